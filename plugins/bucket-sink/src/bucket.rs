//! Bucket assigners: which directory under the base path a record goes to.
//!
//! Invariant: a bucket name is a single safe path component (no `/`, no `..`, not hidden), so
//! a record can never steer the sink outside its base directory.

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use weir_sdk::{Record, Result, anyhow, bail};

/// How records are spread over bucket directories.
pub enum Assigner {
    /// By processing time, formatted with a strftime pattern in a time zone.
    Time { format: String, tz: Tz },
    /// By the record key.
    Key,
    /// By the value of a record header.
    Header(String),
}

impl Assigner {
    /// `bucket` config: `time` (with `format` and `timezone`), `key`, or `header:<name>`.
    pub fn parse(bucket: &str, format: &str, timezone: &str) -> Result<Self> {
        Ok(match bucket {
            "time" => {
                let tz: Tz = timezone
                    .parse()
                    .map_err(|_| anyhow!("config `timezone` = {timezone:?} is not an IANA time zone such as \"Europe/Berlin\""))?;
                // Render once now, so a bad pattern fails at open, not mid-stream.
                let probe = Utc
                    .timestamp_millis_opt(0)
                    .single()
                    .expect("epoch")
                    .with_timezone(&tz);
                let mut s = String::new();
                use std::fmt::Write;
                write!(s, "{}", probe.format(format)).map_err(|_| {
                    anyhow!("config `bucket_format` = {format:?} is not a valid strftime pattern")
                })?;
                Assigner::Time {
                    format: format.to_owned(),
                    tz,
                }
            }
            "key" => Assigner::Key,
            other => match other.strip_prefix("header:") {
                Some(name) if !name.is_empty() => Assigner::Header(name.to_owned()),
                _ => {
                    bail!("config `bucket` = {other:?}: use \"time\", \"key\" or \"header:<name>\"")
                }
            },
        })
    }

    /// The bucket every record of a batch written at `now_ms` gets, if it does not depend on the
    /// record (processing-time buckets): computed once per batch, not once per record.
    pub fn batch_bucket(&self, now_ms: i64) -> Option<String> {
        match self {
            Assigner::Time { .. } => Some(self.bucket(&Record::default(), now_ms)),
            _ => None,
        }
    }

    /// The bucket of `record` at processing time `now_ms`.
    pub fn bucket(&self, record: &Record, now_ms: i64) -> String {
        let raw = match self {
            Assigner::Time { format, tz } => {
                let t = Utc
                    .timestamp_millis_opt(now_ms)
                    .single()
                    .unwrap_or_default()
                    .with_timezone(tz);
                t.format(format).to_string()
            }
            Assigner::Key => {
                String::from_utf8_lossy(record.key.as_deref().unwrap_or(b"_none")).into_owned()
            }
            Assigner::Header(name) => {
                String::from_utf8_lossy(record.header(name).unwrap_or(b"_none")).into_owned()
            }
        };
        sanitize(&raw)
    }
}

/// One safe path component: `/` and `\` become `_`, a leading `.` becomes `_`, empty is `_`.
pub fn sanitize(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_buckets_use_the_zone() {
        let a = Assigner::parse("time", "%Y-%m-%d--%H", "Asia/Kathmandu").unwrap();
        // 2026-01-01T00:00:00Z is 05:45 in Kathmandu.
        assert_eq!(
            a.bucket(&Record::new("x"), 1_767_225_600_000),
            "2026-01-01--05"
        );
        let utc = Assigner::parse("time", "%Y-%m-%d--%H", "UTC").unwrap();
        assert_eq!(
            utc.bucket(&Record::new("x"), 1_767_225_600_000),
            "2026-01-01--00"
        );
        assert!(Assigner::parse("time", "%Y", "Mars/Olympus").is_err());
    }

    #[test]
    fn records_cannot_escape_the_base_directory() {
        assert_eq!(sanitize("../../etc"), "_.._.._etc");
        assert_eq!(sanitize(".hidden"), "_.hidden");
        assert_eq!(sanitize(""), "_");
        let k = Assigner::parse("key", "", "UTC").unwrap();
        assert_eq!(k.bucket(&Record::keyed("a/b", "v"), 0), "a_b");
    }
}
