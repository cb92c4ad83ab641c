//! `plugin = "nexmark"`: the Nexmark benchmark's event stream (persons, auctions and bids of an
//! online auction), generated in the host as the standard generator (Beam's and Flink's
//! nexmark) does: of every 50 events 1 person, 3 auctions and 46 bids; bids go to hot
//! auctions and come from hot bidders half and three quarters of the time; prices are
//! log-uniform from $1 to $1M (in cents). Values are JSON with `"type"` first (`person`,
//! `auction`, `bid`); each record's timestamp is the event's `date_time`.
//!
//! Invariants: event `i` is a pure function of (`seed`, `i`), so a restore replays exactly the
//! events it had sent (the state is the next event index); subtask `s` of `p` produces the events
//! `i ≡ s (mod p)`, so the stream is the same at any parallelism; each subtask's event time only
//! grows, and its watermark stays below every event it will still send.

use super::options::At;
use crate::config::ConfigError;
use crate::runtime::SourceNode;
use std::fmt::Write as _;
use std::time::Instant;
use weir_core::NodeError;
use weir_core::batch::BatchBuilder;
use weir_core::node::Polled;

/// Events per 50: persons, auctions (the rest are bids).
const PERSONS: u64 = 1;
const AUCTIONS: u64 = 3;
const PROPORTION: u64 = 50;
const FIRST_PERSON: u64 = 1000;
const FIRST_AUCTION: u64 = 1000;
const FIRST_CATEGORY: u64 = 10;
const CATEGORIES: u64 = 5;
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_BIDDER_RATIO: u64 = 4;
const HOT_SELLER_RATIO: u64 = 4;
const ACTIVE_PEOPLE: u64 = 1000;
const IN_FLIGHT_AUCTIONS: u64 = 100;
const AUCTION_LENGTH_MS: i64 = 10_000;

const FIRST_NAMES: &[&str] = &[
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: &[&str] = &[
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const CITIES: &[&str] = &[
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const STATES: &[&str] = &["AZ", "CA", "ID", "OR", "WA", "WY"];
const CHANNELS: &[&str] = &["Google", "Facebook", "Baidu", "Apple"];

/// `[node.<uid>] plugin = "nexmark"`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NexmarkConfig {
    /// Events in all (0: without end).
    pub events: u64,
    /// At most this many events per second, all subtasks together (`None`: as fast as it can).
    pub rate: Option<u64>,
    pub seed: u64,
    /// Event time of the first event, ms since the epoch.
    pub first_event_time: i64,
    /// Events per second of event time (Nexmark's `firstEventRate`, 10,000).
    pub event_time_rate: u64,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            events: 0,
            rate: None,
            seed: 0,
            first_event_time: 1_700_000_000_000,
            event_time_rate: 10_000,
        }
    }
}

impl NexmarkConfig {
    pub fn parse(at: At, table: &toml::Table) -> Result<Self, ConfigError> {
        /// The `config` of a Nexmark source node, as written.
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Written {
            events: Option<u64>,
            rate: Option<i64>,
            seed: Option<u64>,
            first_event_time: Option<i64>,
            event_time_rate: Option<std::num::NonZeroU64>,
        }
        let w: Written = super::options::read(at, table)?;
        let d = NexmarkConfig::default();
        let rate = match w.rate {
            None => None,
            Some(n) if n > 0 => Some(n as u64),
            Some(n) => {
                return Err(at.invalid(
                    "rate",
                    format!("{n} events/s: must be 1 or more (leave it out for no limit)"),
                ));
            }
        };
        Ok(NexmarkConfig {
            events: w.events.unwrap_or(d.events),
            rate,
            seed: w.seed.unwrap_or(d.seed),
            first_event_time: w.first_event_time.unwrap_or(d.first_event_time),
            event_time_rate: w.event_time_rate.map_or(d.event_time_rate, |n| n.get()),
        })
    }

    /// Event time of event `i`.
    pub fn time_of(&self, i: u64) -> i64 {
        let ms = (u128::from(i) * 1000 / u128::from(self.event_time_rate)) as i64;
        self.first_event_time.saturating_add(ms)
    }
}

/// What event `i` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Person,
    Auction,
    Bid,
}

pub fn kind_of(i: u64) -> EventKind {
    match i % PROPORTION {
        o if o < PERSONS => EventKind::Person,
        o if o < PERSONS + AUCTIONS => EventKind::Auction,
        _ => EventKind::Bid,
    }
}

/// The newest person (0-based) at or before event `i`.
fn last_person(i: u64) -> u64 {
    let (epoch, offset) = (i / PROPORTION, i % PROPORTION);
    let offset = if offset >= PERSONS {
        PERSONS - 1
    } else {
        offset
    };
    epoch * PERSONS + offset
}

/// The newest auction (0-based) at or before event `i` (0 before the first).
fn last_auction(i: u64) -> u64 {
    let (epoch, offset) = (i / PROPORTION, i % PROPORTION);
    if offset < PERSONS {
        (epoch * AUCTIONS).saturating_sub(1)
    } else {
        epoch * AUCTIONS + (offset - PERSONS).min(AUCTIONS - 1)
    }
}

/// SplitMix64: the random numbers of one event, from the seed and its index.
struct Rng(u64);

impl Rng {
    fn of(seed: u64, i: u64) -> Self {
        Rng(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// A person (0-based) active around event `i`: mostly a recent one.
fn some_person(r: &mut Rng, i: u64) -> u64 {
    let last = last_person(i);
    let min = last.saturating_sub(ACTIVE_PEOPLE);
    min + r.below(last - min + 1)
}

/// Log-uniform from 100 to 100,000,000 cents.
fn price(r: &mut Rng) -> u64 {
    (10f64.powf(r.unit() * 6.0) * 100.0).round() as u64
}

/// Append event `i` to `out`.
pub fn write_event(cfg: &NexmarkConfig, i: u64, out: &mut BatchBuilder) {
    let mut r = Rng::of(cfg.seed, i);
    let ts = cfg.time_of(i);
    out.push_value_with(None, Some(ts), |v| {
        let _ = match kind_of(i) {
            EventKind::Person => {
                let id = FIRST_PERSON + last_person(i);
                let (first, last) = (r.pick(FIRST_NAMES), r.pick(LAST_NAMES));
                write!(
                    v,
                    r#"{{"type":"person","id":{id},"name":"{first} {last}","email_address":"{first}{}@example.com","credit_card":"{:04} {:04} {:04} {:04}","city":"{}","state":"{}","date_time":{ts},"extra":""}}"#,
                    r.below(1000),
                    r.below(10_000),
                    r.below(10_000),
                    r.below(10_000),
                    r.below(10_000),
                    r.pick(CITIES),
                    r.pick(STATES),
                )
            }
            EventKind::Auction => {
                let id = FIRST_AUCTION + last_auction(i);
                // Sellers: hot ones most of the time.
                let seller = if r.below(HOT_SELLER_RATIO) > 0 {
                    (last_person(i) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
                } else {
                    some_person(&mut r, i)
                };
                let initial = price(&mut r);
                write!(
                    v,
                    r#"{{"type":"auction","id":{id},"item_name":"item-{}","description":"a fine item","initial_bid":{initial},"reserve":{},"date_time":{ts},"expires":{},"seller":{},"category":{},"extra":""}}"#,
                    r.below(100_000),
                    initial + price(&mut r),
                    ts + AUCTION_LENGTH_MS,
                    FIRST_PERSON + seller,
                    FIRST_CATEGORY + r.below(CATEGORIES),
                )
            }
            EventKind::Bid => {
                let last = last_auction(i);
                let auction = if r.below(HOT_AUCTION_RATIO) > 0 {
                    (last / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
                } else {
                    let min = last.saturating_sub(IN_FLIGHT_AUCTIONS);
                    min + r.below(last - min + 1)
                };
                let bidder = if r.below(HOT_BIDDER_RATIO) > 0 {
                    (last_person(i) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
                } else {
                    some_person(&mut r, i)
                };
                let channel = r.pick(CHANNELS);
                write!(
                    v,
                    r#"{{"type":"bid","auction":{},"bidder":{},"price":{},"channel":"{channel}","url":"https://www.nexmark.com/item.htm?query=1&channel_id={}","date_time":{ts},"extra":""}}"#,
                    FIRST_AUCTION + auction,
                    FIRST_PERSON + bidder,
                    price(&mut r),
                    r.below(10_000),
                )
            }
        };
    });
}

/// One subtask of the generator.
pub struct NexmarkSource {
    cfg: NexmarkConfig,
    subtask: u64,
    parallelism: u64,
    /// The next event this subtask sends.
    next: u64,
    /// Its newest event's time, for the watermark.
    newest: Option<i64>,
    throttle: Option<(Instant, u64, f64)>,
}

impl NexmarkSource {
    pub fn new(cfg: NexmarkConfig, subtask: u32, parallelism: u32) -> Self {
        let per_subtask = cfg.rate.map(|r| r as f64 / f64::from(parallelism));
        NexmarkSource {
            cfg,
            subtask: u64::from(subtask),
            parallelism: u64::from(parallelism),
            next: u64::from(subtask),
            newest: None,
            throttle: per_subtask.map(|r| (Instant::now(), 0, r)),
        }
    }

    fn exhausted(&self) -> bool {
        self.cfg.events > 0 && self.next >= self.cfg.events
    }
}

impl SourceNode for NexmarkSource {
    fn poll(&mut self, max: u32) -> Result<Polled, NodeError> {
        if self.exhausted() {
            return Ok(Polled::End);
        }
        let mut n = u64::from(max.max(1));
        if let Some((start, sent, rate)) = &self.throttle {
            let allowed = (start.elapsed().as_secs_f64() * rate) as u64;
            n = n.min(allowed.saturating_sub(*sent));
            if n == 0 {
                return Ok(Polled::Idle);
            }
        }
        let mut out = BatchBuilder::with_capacity(n as usize * 200);
        while out.len() < n as usize && !self.exhausted() {
            write_event(&self.cfg, self.next, &mut out);
            self.newest = Some(self.cfg.time_of(self.next));
            self.next += self.parallelism;
        }
        if let Some((_, sent, _)) = &mut self.throttle {
            *sent += out.len() as u64;
        }
        Ok(Polled::Batch(out.finish()))
    }

    fn take_watermark(&mut self) -> Option<i64> {
        // Later events of this subtask are at this time or after.
        self.newest.map(|t| t - 1)
    }

    fn snapshot(&mut self, _checkpoint: u64) -> Result<Vec<u8>, NodeError> {
        Ok(self.next.to_le_bytes().to_vec())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError> {
        let next = <[u8; 8]>::try_from(state)
            .map(u64::from_le_bytes)
            .map_err(|_| NodeError::External {
                node: "nexmark".into(),
                subtask: self.subtask as u32,
                connector: "nexmark",
                message: format!("its stored state is {} bytes, not 8", state.len()),
            })?;
        if next % self.parallelism != self.subtask {
            return Err(NodeError::External {
                node: "nexmark".into(),
                subtask: self.subtask as u32,
                connector: "nexmark",
                message: "the stored state is another parallelism's: restore at the parallelism it was taken at".into(),
            });
        }
        self.next = next;
        if next >= self.parallelism {
            self.newest = Some(self.cfg.time_of(next - self.parallelism));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(cfg: &NexmarkConfig, n: u64) -> Vec<(i64, String)> {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            write_event(cfg, i, &mut b);
        }
        b.finish()
            .iter()
            .map(|r| (r.timestamp.unwrap(), r.value_str().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn the_stream_has_nexmarks_proportions_and_is_valid_json_in_time_order() {
        let cfg = NexmarkConfig::default();
        let all = events(&cfg, 5000);
        let count = |t: &str| {
            all.iter()
                .filter(|(_, v)| v.starts_with(&format!(r#"{{"type":"{t}""#)))
                .count()
        };
        assert_eq!(
            (count("person"), count("auction"), count("bid")),
            (100, 300, 4600)
        );
        let mut last = i64::MIN;
        for (ts, v) in &all {
            let j: serde_json::Value = serde_json::from_str(v).unwrap();
            assert_eq!(j["date_time"].as_i64(), Some(*ts));
            assert!(*ts >= last);
            last = *ts;
            if j["type"] == "bid" {
                // Bids go to auctions and come from persons that exist by then.
                assert!(j["auction"].as_u64().unwrap() >= FIRST_AUCTION);
                assert!((100..=100_000_000).contains(&j["price"].as_u64().unwrap()));
            }
        }
        assert_eq!(all[10_usize].0, cfg.first_event_time + 1);
        // Seeded: the same seed, the same stream; another, another.
        assert_eq!(events(&cfg, 50), all[..50]);
        let other = NexmarkConfig { seed: 7, ..cfg };
        assert_ne!(events(&other, 50), all[..50]);
    }

    #[test]
    fn subtasks_split_the_stream_and_resume_where_they_were() {
        let cfg = NexmarkConfig {
            events: 1000,
            ..NexmarkConfig::default()
        };
        let whole = events(&cfg, 1000);
        let mut got = Vec::new();
        for s in 0..3 {
            let mut src = NexmarkSource::new(cfg.clone(), s, 3);
            let Polled::Batch(first) = src.poll(100).unwrap() else {
                panic!()
            };
            let state = src.snapshot(1).unwrap();
            let mut again = NexmarkSource::new(cfg.clone(), s, 3);
            again.restore(&state).unwrap();
            for r in &first {
                got.push(r.value_str().unwrap().to_owned());
            }
            while let Polled::Batch(b) = again.poll(100).unwrap() {
                for r in &b {
                    got.push(r.value_str().unwrap().to_owned());
                }
            }
        }
        let mut want: Vec<String> = whole.into_iter().map(|(_, v)| v).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
}
