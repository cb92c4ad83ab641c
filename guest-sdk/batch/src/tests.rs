//! The codec against postcard (the format's definition) and against bad bytes.

use super::*;
use serde::{Deserialize, Serialize};

/// The record as postcard sees it: what older SDK builds encode and decode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Plain {
    #[serde(with = "serde_bytes")]
    key: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
    timestamp: Option<i64>,
    headers: Vec<(String, serde_bytes::ByteBuf)>,
}

fn sample() -> Vec<Plain> {
    vec![
        Plain {
            key: Some(b"k1".to_vec()),
            value: b"hello".to_vec(),
            timestamp: Some(-5),
            headers: vec![("h".into(), serde_bytes::ByteBuf::from(vec![0, 255]))],
        },
        Plain {
            key: None,
            value: Vec::new(),
            timestamp: None,
            headers: Vec::new(),
        },
        Plain {
            key: Some(Vec::new()),
            value: vec![7; 300],
            timestamp: Some(i64::MAX),
            headers: (0..200)
                .map(|i| (format!("n{i}"), serde_bytes::ByteBuf::from(vec![i as u8])))
                .collect(),
        },
        Plain {
            key: None,
            value: b"x".to_vec(),
            timestamp: Some(i64::MIN),
            headers: Vec::new(),
        },
    ]
}

fn plain(r: RecordRef) -> Plain {
    Plain {
        key: r.key.map(<[u8]>::to_vec),
        value: r.value.to_vec(),
        timestamp: r.timestamp,
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (k.to_owned(), serde_bytes::ByteBuf::from(v.to_vec())))
            .collect(),
    }
}

fn build(records: &[Plain]) -> Batch {
    let mut b = BatchBuilder::new();
    for r in records {
        b.push(
            r.key.as_deref(),
            &r.value,
            r.timestamp,
            r.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        );
    }
    b.finish()
}

#[test]
fn postcard_reads_what_the_builder_writes_and_back() {
    let built = build(&sample());
    let decoded: Vec<Plain> = postcard::from_bytes(built.as_bytes()).unwrap();
    assert_eq!(decoded, sample());
    let theirs = postcard::to_allocvec(&sample()).unwrap();
    let batch = Batch::decode(theirs, &Limits::NONE).unwrap();
    assert_eq!(batch.len(), 4);
    assert_eq!(batch.iter().map(plain).collect::<Vec<_>>(), sample());
    assert_eq!(Batch::empty().len(), 0);
    assert_eq!(Batch::decode(vec![0], &Limits::NONE).unwrap().len(), 0);
}

#[test]
fn records_copied_mapped_and_appended_stay_whole() {
    let src = build(&sample());
    let mut b = BatchBuilder::new();
    for r in &src {
        b.push_ref(&r);
        b.push_mapped(&r, |v| {
            v.extend_from_slice(r.value);
            v.as_mut_slice().make_ascii_uppercase();
        });
    }
    b.push_value_with(Some(b"k"), Some(3), |v| {
        use std::fmt::Write;
        write!(v, "{}-x", 12).unwrap();
    });
    b.extend(&src);
    // A long value written in place keeps its padded length.
    b.push_value_with(None, None, |v| v.extend_from_slice(&[9; 20_000]));
    let out = b.finish();
    let again = Batch::decode(out.as_bytes().to_vec(), &Limits::NONE).unwrap();
    let got: Vec<Plain> = again.iter().map(plain).collect();
    assert_eq!(got.len(), 14);
    assert_eq!(got[13].value, vec![9; 20_000]);
    let mut upper = sample()[0].clone();
    upper.value = b"HELLO".to_vec();
    assert_eq!(got[0], sample()[0]);
    assert_eq!(got[1], upper);
    assert_eq!(got[5].value, vec![7; 300]);
    assert_eq!(got[5].headers.len(), 200);
    assert_eq!(got[8].value, b"12-x");
    assert_eq!(got[8].timestamp, Some(3));
    assert_eq!(&got[9..13], &sample()[..]);
    let postcard: Vec<Plain> = postcard::from_bytes(out.as_bytes()).unwrap();
    assert_eq!(postcard, got);
    // A finished batch continues where it ended.
    let mut more = again.into_builder();
    more.push(None, b"last", None, []);
    let more = more.finish();
    assert_eq!(more.len(), 15);
    assert_eq!(more.iter().last().unwrap().value, b"last");
}

fn malformed(bytes: &[u8]) -> String {
    match Batch::decode(bytes.to_vec(), &Limits::NONE) {
        Err(Error::Malformed(m)) => m,
        other => panic!("expected a malformed batch, got {other:?}"),
    }
}

#[test]
fn bad_bytes_are_refused_naming_why() {
    let good = build(&sample()).into_bytes();
    for cut in 0..good.len() {
        assert!(
            Batch::decode(good[..cut].to_vec(), &Limits::NONE).is_err(),
            "a batch cut at {cut} of {} bytes was accepted",
            good.len()
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(malformed(&trailing).contains("after the last record"));
    assert!(malformed(&[1, 2, 0, 0, 0]).contains("option tag 2"));
    assert!(malformed(&[0xff, 0xff, 0xff, 0xff, 0x0f]).contains("claims"));
    assert!(malformed(&[1, 0, 0xff, 0xff, 0xff, 0x0f, 0, 0]).contains("length"));
    // A header name that is not UTF-8.
    assert!(malformed(&[1, 0, 0, 0, 1, 1, 0xff, 0]).contains("UTF-8"));
    assert!(
        malformed(&[
            1, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0
        ])
        .contains("overflows")
    );
}

#[test]
fn limits_refuse_before_allocating() {
    let empty = Plain {
        key: None,
        value: Vec::new(),
        timestamp: None,
        headers: Vec::new(),
    };
    let bytes = build(&vec![empty.clone(); 1000]).into_bytes();
    let limits = Limits {
        records: 999,
        ..Limits::NONE
    };
    assert_eq!(
        Batch::decode(bytes.clone(), &limits),
        Err(Error::TooLarge("1000 records (limit 999)".into()))
    );
    assert_eq!(Batch::decode(bytes, &Limits::NONE).unwrap().len(), 1000);
    // A count the bytes cannot hold is no batch, whatever the limits.
    assert!(matches!(
        Batch::decode(vec![0xff, 0xff, 0xff, 0x0f, 1, 2, 3], &limits),
        Err(Error::Malformed(m)) if m.contains("claims 33554431 records in 3 bytes")
    ));
    let headers = build(&[Plain {
        headers: (0..10)
            .map(|i| (format!("h{i}"), serde_bytes::ByteBuf::new()))
            .collect(),
        ..empty
    }])
    .into_bytes();
    let limits = Limits {
        headers: 9,
        ..Limits::NONE
    };
    assert!(matches!(
        Batch::decode(headers.clone(), &limits),
        Err(Error::TooLarge(_))
    ));
    let limits = Limits {
        bytes: 3,
        ..Limits::NONE
    };
    assert!(matches!(
        Batch::decode(headers, &limits),
        Err(Error::TooLarge(_))
    ));
}
