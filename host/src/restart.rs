//! Restart strategies: the `[restart]` table validated, and the tracker that decides, failure by
//! failure, whether a failed attempt of the job is restarted and after what pause (Flink's
//! `none`, `fixed-delay`, `exponential-delay` and `failure-rate`, with Flink's meanings).
//!
//! Invariant: every bad value is an error naming its key; a key that does not apply to the chosen
//! strategy is refused, never ignored. Failures a restart cannot cure never reach the tracker
//! (see `RunError::incurable`), and neither does a plugin's own failure that a restart just
//! repeated on the same input ([`Repeats`]).

use crate::config::units::or;
use crate::config::{ConfigError, PipelineSpec, RestartKind};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// Validated `[restart]`.
#[derive(Clone, Debug, PartialEq)]
pub enum RestartStrategy {
    None,
    FixedDelay {
        attempts: u32,
        delay: Duration,
    },
    /// Pauses grow from `delay` by `multiplier` up to `max_delay`; an attempt that ran
    /// `reset_after` before failing starts pauses and attempts over.
    ExponentialDelay {
        attempts: u32,
        delay: Duration,
        max_delay: Duration,
        multiplier: f64,
        reset_after: Duration,
        jitter: f64,
    },
    FailureRate {
        max_failures: u32,
        interval: Duration,
        delay: Duration,
    },
}

impl RestartStrategy {
    /// The default with checkpoints: exponential-delay, 3 attempts after 1, 2 and 4 s. Bounded,
    /// so a failure that keeps coming back ends the job with its cause within seconds.
    pub fn default_with_checkpoints() -> Self {
        RestartStrategy::ExponentialDelay {
            attempts: 3,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            multiplier: 2.0,
            reset_after: Duration::from_secs(3600),
            jitter: 0.1,
        }
    }

    /// `[restart]`, or the default: [`Self::default_with_checkpoints`] with checkpoints (a
    /// restart resumes from one), none without (a restart would start over).
    pub fn from_spec(spec: &PipelineSpec, checkpointing: bool) -> Result<Self, ConfigError> {
        let Some(r) = &spec.file.restart else {
            return Ok(if checkpointing {
                Self::default_with_checkpoints()
            } else {
                RestartStrategy::None
            });
        };
        let (kind, applies): (&str, &[&str]) = match r.strategy {
            RestartKind::None => ("none", &[]),
            RestartKind::FixedDelay => ("fixed-delay", &["attempts", "delay"]),
            RestartKind::ExponentialDelay => (
                "exponential-delay",
                &[
                    "attempts",
                    "delay",
                    "max_delay",
                    "multiplier",
                    "reset_after",
                    "jitter",
                ],
            ),
            RestartKind::FailureRate => ("failure-rate", &["max_failures", "interval", "delay"]),
        };
        for (key, set) in [
            ("attempts", r.attempts.is_some()),
            ("delay", r.delay.is_some()),
            ("max_delay", r.max_delay.is_some()),
            ("multiplier", r.multiplier.is_some()),
            ("reset_after", r.reset_after.is_some()),
            ("jitter", r.jitter.is_some()),
            ("max_failures", r.max_failures.is_some()),
            ("interval", r.interval.is_some()),
        ] {
            if set && !applies.contains(&key) {
                let which = if applies.is_empty() {
                    "it takes no options".to_owned()
                } else {
                    format!("its options are {}", applies.join(", "))
                };
                return Err(spec.invalid(
                    format!("restart.{key}"),
                    format!("does not apply to strategy = \"{kind}\" ({which})"),
                ));
            }
        }
        let delay = or(r.delay, Duration::from_secs(1));
        Ok(match r.strategy {
            RestartKind::None => RestartStrategy::None,
            RestartKind::FixedDelay => RestartStrategy::FixedDelay {
                attempts: r.attempts.unwrap_or(3),
                delay,
            },
            RestartKind::ExponentialDelay => {
                let max_delay = or(r.max_delay, Duration::from_secs(60));
                if max_delay < delay {
                    return Err(spec.invalid(
                        "restart.max_delay",
                        format!("must be at least restart.delay ({delay:?})"),
                    ));
                }
                let multiplier = r.multiplier.unwrap_or(2.0);
                if !(multiplier >= 1.0 && multiplier.is_finite()) {
                    return Err(spec.invalid(
                        "restart.multiplier",
                        format!("{multiplier} must be a number of at least 1.0"),
                    ));
                }
                let jitter = r.jitter.unwrap_or(0.1);
                if !(0.0..=1.0).contains(&jitter) {
                    return Err(spec.invalid(
                        "restart.jitter",
                        format!("{jitter} must be a fraction from 0.0 to 1.0"),
                    ));
                }
                RestartStrategy::ExponentialDelay {
                    attempts: r.attempts.unwrap_or(3),
                    delay,
                    max_delay,
                    multiplier,
                    reset_after: or(r.reset_after, Duration::from_secs(3600)),
                    jitter,
                }
            }
            RestartKind::FailureRate => RestartStrategy::FailureRate {
                max_failures: r.max_failures.unwrap_or(3),
                interval: or(r.interval, Duration::from_secs(60)),
                delay,
            },
        })
    }
}

/// Decides, failure by failure, whether to restart and after what pause.
pub struct RestartTracker {
    strategy: RestartStrategy,
    /// When each counted failure happened.
    failures: Vec<Instant>,
    /// Restarts granted over the tracker's life (for messages).
    restarts: usize,
    /// When the current attempt started.
    attempt_started: Instant,
    /// exponential-delay: the pause granted last.
    last_delay: Option<Duration>,
}

impl RestartTracker {
    pub fn new(strategy: RestartStrategy) -> Self {
        RestartTracker {
            strategy,
            failures: Vec::new(),
            restarts: 0,
            attempt_started: Instant::now(),
            last_delay: None,
        }
    }

    /// An attempt starts now (after its pause).
    pub fn attempt_started(&mut self) {
        self.attempt_started = Instant::now();
    }

    /// Record a failure now; the pause before restarting, or `None` to give up.
    pub fn on_failure(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let delay = match &self.strategy {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                self.failures.push(now);
                (self.failures.len() as u32 <= *attempts).then_some(*delay)
            }
            RestartStrategy::ExponentialDelay {
                attempts,
                delay,
                max_delay,
                multiplier,
                reset_after,
                jitter,
            } => {
                if now.duration_since(self.attempt_started) >= *reset_after {
                    self.failures.clear();
                    self.last_delay = None;
                }
                self.failures.push(now);
                let base = match self.last_delay {
                    None => *delay,
                    Some(last) => last.mul_f64(*multiplier).min(*max_delay),
                };
                self.last_delay = Some(base);
                (self.failures.len() as u32 <= *attempts).then(|| jittered(base, *jitter))
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                self.failures.push(now);
                self.failures
                    .retain(|t| now.duration_since(*t) <= *interval);
                (self.failures.len() as u32 <= *max_failures).then_some(*delay)
            }
        };
        self.restarts += usize::from(delay.is_some());
        delay
    }

    /// Restarts granted so far.
    pub fn restarts(&self) -> usize {
        self.restarts
    }
}

/// `base` varied uniformly by up to ±`jitter` of itself, so jobs that failed together (a broker
/// went away) do not all come back at the same instant.
fn jittered(base: Duration, jitter: f64) -> Duration {
    if jitter == 0.0 {
        return base;
    }
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let unit = (random >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    base.mul_f64(1.0 + jitter * (2.0 * unit - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn spec(text: &str) -> PipelineSpec {
        PipelineSpec::parse(Path::new("/p/job.toml"), text).unwrap()
    }

    fn exponential(attempts: u32, reset_after: Duration) -> RestartStrategy {
        RestartStrategy::ExponentialDelay {
            attempts,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            multiplier: 2.0,
            reset_after,
            jitter: 0.0,
        }
    }

    #[test]
    fn defaults_follow_flink() {
        assert_eq!(
            RestartStrategy::from_spec(&spec(""), true).unwrap(),
            RestartStrategy::default_with_checkpoints()
        );
        assert_eq!(
            RestartStrategy::from_spec(&spec(""), false).unwrap(),
            RestartStrategy::None
        );
        assert_eq!(
            RestartStrategy::from_spec(&spec("[restart]\nstrategy = \"fixed-delay\""), true)
                .unwrap(),
            RestartStrategy::FixedDelay {
                attempts: 3,
                delay: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn bad_values_and_keys_of_other_strategies_name_their_key() {
        for (text, key) in [
            (
                "strategy = \"fixed-delay\"\nmax_failures = 2",
                "restart.max_failures",
            ),
            ("strategy = \"none\"\ndelay = \"1s\"", "restart.delay"),
            (
                "strategy = \"failure-rate\"\nmultiplier = 2.0",
                "restart.multiplier",
            ),
            (
                "strategy = \"exponential-delay\"\nmultiplier = 0.5",
                "restart.multiplier",
            ),
            (
                "strategy = \"exponential-delay\"\njitter = 2.0",
                "restart.jitter",
            ),
            (
                "strategy = \"exponential-delay\"\ndelay = \"2m\"",
                "restart.max_delay",
            ),
            (
                "strategy = \"exponential-delay\"\nreset_after = \"soon\"",
                "restart.reset_after",
            ),
        ] {
            // A value of the wrong form fails the load; a wrong combination, the strategy.
            let e = match PipelineSpec::parse(
                Path::new("/p/job.toml"),
                &format!("[restart]\n{text}"),
            ) {
                Ok(spec) => RestartStrategy::from_spec(&spec, true).unwrap_err(),
                Err(e) => e,
            };
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn fixed_delay_gives_up_after_its_attempts() {
        let mut t = RestartTracker::new(RestartStrategy::FixedDelay {
            attempts: 2,
            delay: Duration::ZERO,
        });
        assert!(t.on_failure().is_some());
        assert!(t.on_failure().is_some());
        assert!(t.on_failure().is_none());
        assert_eq!(t.restarts(), 2);
    }

    #[test]
    fn exponential_delay_doubles_up_to_its_ceiling_then_gives_up() {
        let mut t = RestartTracker::new(exponential(5, Duration::from_secs(3600)));
        let pauses: Vec<_> = (0..6).map(|_| t.on_failure()).collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(
            pauses,
            vec![ms(100), ms(200), ms(400), ms(500), ms(500), None]
        );
    }

    #[test]
    fn exponential_delay_starts_over_after_a_long_healthy_attempt() {
        let mut t = RestartTracker::new(exponential(2, Duration::ZERO));
        for _ in 0..5 {
            t.attempt_started();
            assert_eq!(t.on_failure(), Some(Duration::from_millis(100)));
        }
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let base = Duration::from_secs(10);
        for _ in 0..100 {
            let d = jittered(base, 0.1);
            assert!(
                d >= Duration::from_secs(9) && d <= Duration::from_secs(11),
                "{d:?}"
            );
        }
    }

    #[test]
    fn failure_rate_counts_failures_in_its_window() {
        let mut t = RestartTracker::new(RestartStrategy::FailureRate {
            max_failures: 1,
            interval: Duration::from_secs(3600),
            delay: Duration::ZERO,
        });
        assert!(t.on_failure().is_some());
        assert!(t.on_failure().is_none());
        let mut t = RestartTracker::new(RestartStrategy::FailureRate {
            max_failures: 1,
            interval: Duration::ZERO,
            delay: Duration::ZERO,
        });
        assert!(t.on_failure().is_some());
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            t.on_failure().is_some(),
            "the earlier failure left the window"
        );
    }
}

/// Failures of a plugin's own logic (an exception, a panic, a trap), remembered with how far the
/// job had got: the same failure again after a restart, with no checkpoint completed since, is
/// the same input failing the same way, which no further restart cures. Failures of the world
/// around it (I/O, a lost broker) are not watched: those may pass.
#[derive(Default)]
pub struct Repeats {
    /// The last watched failure: the latest complete checkpoint when it happened, its text.
    last: Option<(Option<u64>, String)>,
}

impl Repeats {
    /// A failure happened with `progress` the latest complete checkpoint; `logic` is its text
    /// when it is a failure of the plugin's own logic. Whether it repeats the last one.
    pub fn repeated(&mut self, progress: Option<u64>, logic: Option<String>) -> bool {
        let now = logic.map(|text| (progress, text));
        let again = now.is_some() && now == self.last;
        self.last = now;
        again
    }
}

#[cfg(test)]
mod repeats_tests {
    use super::*;

    #[test]
    fn the_same_logic_failure_without_progress_is_a_repeat() {
        let mut r = Repeats::default();
        assert!(!r.repeated(Some(3), Some("boom".into())));
        assert!(
            r.repeated(Some(3), Some("boom".into())),
            "same text, no progress"
        );
        let mut r = Repeats::default();
        assert!(!r.repeated(Some(3), Some("boom".into())));
        assert!(
            !r.repeated(Some(4), Some("boom".into())),
            "a checkpoint completed between"
        );
        assert!(
            !r.repeated(Some(4), Some("other".into())),
            "another failure"
        );
        assert!(!r.repeated(Some(4), None), "not a logic failure");
        assert!(!r.repeated(Some(4), None));
    }
}
