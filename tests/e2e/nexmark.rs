//! Nexmark end to end: the `nexmark` source's events and every query of examples/nexmark
//! through the real binary into a file sink, each query's output checked against a reference
//! computed here, independently, from the same events; q5's windows through SIGKILLs.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const EVENTS: u64 = 60_000;

fn pipeline(query: Option<&str>, rate: Option<u32>) -> String {
    let rate = rate.map(|r| format!(", rate = {r}")).unwrap_or_default();
    let mut p = format!(
        r#"
[checkpoint]
interval = "100ms"

[node.events]
kind = "source"
plugin = "nexmark"
config = {{ events = {EVENTS}, seed = 3{rate} }}
"#
    );
    let last = match query {
        None => "events",
        Some(q) => {
            p.push_str(&format!(
                "\n[node.q]\nkind = \"operator\"\nplugin = \"{}\"\ninput = \"events\"\nconfig = {{ query = \"{q}\" }}\n",
                root().join("target/wasm/wasm32-wasip2/guest/nexmark_queries.wasm").display()
            ));
            "q"
        }
    };
    p.push_str(&format!(
        r#"
[node.out]
kind = "sink"
plugin = "file"
input = "{last}"
config = {{ path = "/out/out.jsonl" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#
    ));
    p
}

fn run(dir: &Path, query: Option<&str>) -> Vec<Value> {
    let _ = std::fs::remove_dir_all(dir.join("out"));
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("p.toml"), pipeline(query, None)).unwrap();
    let o = run_weir(&["run", "--fresh", "--yes", "p.toml"], dir);
    assert!(o.status.success(), "{query:?}: {}", stderr(&o));
    read(dir)
}

fn read(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out/out.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn bids(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["type"] == "bid").collect()
}

fn n(v: &Value, k: &str) -> i64 {
    v[k].as_i64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

/// q5's reference: per 10 s window every 2 s, the auctions with the most bids, counted by
/// scanning every bid for every window.
fn hot_items(bids: &[&Value]) -> Vec<(i64, i64, i64)> {
    let (lo, hi) = (
        n(bids[0], "date_time"),
        n(bids[bids.len() - 1], "date_time"),
    );
    let mut out = Vec::new();
    let mut end = (lo / 2000 + 1) * 2000;
    while end - 10_000 <= hi {
        let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
        for b in bids {
            let t = n(b, "date_time");
            if end - 10_000 <= t && t < end {
                *counts.entry(n(b, "auction")).or_default() += 1;
            }
        }
        if let Some(max) = counts.values().max().copied() {
            out.extend(
                counts
                    .iter()
                    .filter(|(_, c)| **c == max)
                    .map(|(a, _)| (*a, max, end)),
            );
        }
        end += 2000;
    }
    out
}

fn assert_hot_items(got: &[Value], bids: &[&Value]) {
    let got: Vec<(i64, i64, i64)> = got
        .iter()
        .map(|v| (n(v, "auction"), n(v, "num"), n(v, "window_end")))
        .collect();
    assert_eq!(got, hot_items(bids));
}

#[test]
fn every_nexmark_query_matches_a_reference_computed_from_the_same_events() {
    let dir = scratch();
    let d = dir.path();
    let events = run(d, None);
    assert_eq!(events.len() as u64, EVENTS);
    let bids = bids(&events);
    assert_eq!(
        bids.len() as u64,
        EVENTS / 50 * 46,
        "46 of every 50 events are bids"
    );

    assert_eq!(
        run(d, Some("q0")),
        bids.iter().map(|b| (*b).clone()).collect::<Vec<_>>()
    );

    let q1: Vec<(i64, i64)> = run(d, Some("q1"))
        .iter()
        .map(|v| (n(v, "auction"), n(v, "price")))
        .collect();
    let want: Vec<(i64, i64)> = bids
        .iter()
        .map(|b| (n(b, "auction"), n(b, "price") * 908 / 1000))
        .collect();
    assert_eq!(q1, want);

    let q2: Vec<(i64, i64)> = run(d, Some("q2"))
        .iter()
        .map(|v| (n(v, "auction"), n(v, "price")))
        .collect();
    let want: Vec<(i64, i64)> = bids
        .iter()
        .filter(|b| n(b, "auction") % 123 == 0)
        .map(|b| (n(b, "auction"), n(b, "price")))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(q2, want);

    assert_hot_items(&run(d, Some("q5")), &bids);

    // q7: per 10 s window, the bids at its highest price.
    let mut windows: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for b in &bids {
        windows
            .entry(n(b, "date_time").div_euclid(10_000))
            .or_default()
            .push(b);
    }
    let want: Vec<Value> = windows
        .values()
        .flat_map(|w| {
            let max = w.iter().map(|b| n(b, "price")).max().unwrap();
            w.iter()
                .filter(move |b| n(b, "price") == max)
                .map(|b| (*b).clone())
        })
        .collect();
    assert_eq!(run(d, Some("q7")), want);
}

#[test]
fn hot_items_windows_survive_sigkills_exactly() {
    let dir = scratch();
    let d = dir.path();
    let events = run(d, None);
    let bids = bids(&events);
    std::fs::remove_dir_all(d.join("out")).unwrap();
    std::fs::create_dir_all(d.join("out")).unwrap();
    let _ = std::fs::remove_dir_all(d.join(".weir"));
    crash_loop_changing(&["run", "p.toml"], d, 4, 100, 300, |_, last| {
        let rate = if last { None } else { Some(8_000) };
        std::fs::write(d.join("p.toml"), pipeline(Some("q5"), rate)).unwrap();
    });
    assert_hot_items(&read(d), &bids);
}
