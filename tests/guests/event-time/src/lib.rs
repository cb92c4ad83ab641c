//! Test operator for event time. `mode = "timers"`: every record registers an event-time timer
//! `delay_ms` after its timestamp, keyed by its value; a fired timer gives `fired\t<key>\t<ts>`,
//! the first record also a processing-time timer `processing_ms` ahead (if set), which gives
//! `processing\t<key>`, and `finish` gives `finish\t<records seen>`. `mode = "session"`:
//! session windows of `gap_ms` per `"user"` of the JSON value, counted:
//! `<start>\t<end>\t<user>\t<count>`.

use serde::{Deserialize, Serialize};
use weir_sdk::window::{Count, Windows};
use weir_sdk::{
    Config, Context, Operator, Record, Result, TimeDomain, Timer, bail, operator, time,
};

#[derive(Serialize, Deserialize)]
enum Mode {
    Timers {
        delay: i64,
        processing: Option<i64>,
        seen: u64,
    },
    Session(Windows<Count>),
}

/// The node's config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mode: String,
    #[serde(default)]
    delay_ms: i64,
    processing_ms: Option<i64>,
    gap_ms: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct EventTime {
    mode: Mode,
}

#[operator]
impl Operator for EventTime {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        let c: Settings = config.read()?;
        let mode = match c.mode.as_str() {
            "timers" => Mode::Timers {
                delay: c.delay_ms,
                processing: c.processing_ms,
                seen: 0,
            },
            "session" => Mode::Session(Windows::session(c.gap_ms.unwrap_or(1000), Count)),
            other => bail!("unknown mode {other:?}"),
        };
        Ok(EventTime { mode })
    }

    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
        match &mut self.mode {
            Mode::Timers {
                delay,
                processing,
                seen,
            } => {
                for r in &batch {
                    let Some(ts) = r.timestamp else {
                        bail!("a record without a timestamp")
                    };
                    time::register_event_timer(Some(&r.value), ts + *delay);
                    if *seen == 0
                        && let Some(p) = processing
                    {
                        time::register_processing_timer(Some(b"pt"), time::processing_time() + *p);
                    }
                    *seen += 1;
                }
                Ok(Vec::new())
            }
            Mode::Session(w) => {
                let mut keyed = Vec::with_capacity(batch.len());
                for mut r in batch {
                    let v: serde_json::Value = serde_json::from_slice(&r.value)?;
                    let Some(user) = v.get("user").and_then(|u| u.as_str()) else {
                        bail!("no user")
                    };
                    r.key = Some(user.as_bytes().to_vec());
                    keyed.push(r);
                }
                w.add(keyed, |_| ())?;
                Ok(Vec::new())
            }
        }
    }

    fn on_timers(&mut self, fired: Vec<Timer>) -> Result<Vec<Record>> {
        match &mut self.mode {
            Mode::Timers { .. } => Ok(fired
                .into_iter()
                .map(|t| {
                    let key =
                        String::from_utf8_lossy(t.key.as_deref().unwrap_or_default()).into_owned();
                    match t.domain {
                        TimeDomain::EventTime => {
                            Record::new(format!("fired\t{key}\t{}", t.timestamp))
                        }
                        TimeDomain::ProcessingTime => Record::new(format!("processing\t{key}")),
                    }
                })
                .collect()),
            Mode::Session(w) => Ok(w
                .fire(&fired)?
                .into_iter()
                .map(|f| {
                    Record::new(format!(
                        "{}\t{}\t{}\t{}",
                        f.window.start,
                        f.window.end,
                        f.key_str(),
                        f.value
                    ))
                })
                .collect()),
        }
    }

    fn finish(&mut self) -> Result<Vec<Record>> {
        match &self.mode {
            Mode::Timers { seen, .. } => Ok(vec![Record::new(format!("finish\t{seen}"))]),
            Mode::Session(_) => Ok(Vec::new()),
        }
    }
}
