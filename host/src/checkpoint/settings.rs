//! Checkpoint and restart settings: the `[checkpoint]` and `[restart]` tables validated into
//! durations and numbers, with Flink's meanings and defaults.
//!
//! Invariant: every bad value is an error naming its key; nothing falls back silently.

use crate::config::{CheckpointMode, ConfigError, PipelineSpec, RestartKind};
use std::path::PathBuf;
use std::time::Duration;

/// Validated `[checkpoint]`.
#[derive(Clone, Debug)]
pub struct CheckpointSettings {
    pub enabled: bool,
    pub interval: Duration,
    pub exactly_once: bool,
    pub timeout: Duration,
    pub max_concurrent: usize,
    pub min_pause: Duration,
    pub retain: usize,
    /// Absolute state directory of this pipeline.
    pub dir: PathBuf,
}

/// Validated `[restart]`.
#[derive(Clone, Debug, PartialEq)]
pub enum RestartStrategy {
    None,
    FixedDelay {
        attempts: u32,
        delay: Duration,
    },
    FailureRate {
        max_failures: u32,
        interval: Duration,
        delay: Duration,
    },
}

fn duration(
    spec: &PipelineSpec,
    key: &str,
    value: &Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value.as_deref().unwrap_or(default);
    crate::config::parse_duration(text).ok_or_else(|| {
        spec.invalid(
            key,
            format!("{text:?} is not a duration such as \"10s\" or \"500ms\""),
        )
    })
}

impl CheckpointSettings {
    pub fn from_spec(spec: &PipelineSpec) -> Result<Self, ConfigError> {
        let c = &spec.file.checkpoint;
        let interval = duration(spec, "checkpoint.interval", &c.interval, "10s")?;
        if interval.is_zero() {
            return Err(spec.invalid(
                "checkpoint.interval",
                "must be more than 0 (to turn checkpoints off, set enabled = false)",
            ));
        }
        if c.max_concurrent == 0 {
            return Err(spec.invalid("checkpoint.max_concurrent", "must be at least 1"));
        }
        if c.retain == 0 {
            return Err(spec.invalid("checkpoint.retain", "must be at least 1"));
        }
        let dir = match &c.dir {
            Some(d) => spec.resolve(d),
            None => spec.base.join(".weir").join(&spec.name),
        };
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Ok(CheckpointSettings {
            enabled: c.enabled,
            interval,
            exactly_once: c.mode == CheckpointMode::ExactlyOnce,
            timeout: duration(spec, "checkpoint.timeout", &c.timeout, "10m")?,
            max_concurrent: c.max_concurrent,
            min_pause: duration(spec, "checkpoint.min_pause", &c.min_pause, "0s")?,
            retain: c.retain,
            dir,
        })
    }
}

impl RestartStrategy {
    /// `[restart]`, or the default: fixed-delay (3 attempts, 1 s) with checkpoints, none without.
    pub fn from_spec(spec: &PipelineSpec, checkpointing: bool) -> Result<Self, ConfigError> {
        let Some(r) = &spec.file.restart else {
            return Ok(if checkpointing {
                RestartStrategy::FixedDelay {
                    attempts: 3,
                    delay: Duration::from_secs(1),
                }
            } else {
                RestartStrategy::None
            });
        };
        let delay = duration(spec, "restart.delay", &r.delay, "1s")?;
        let unexpected = |key: &str, kind: &str| {
            spec.invalid(
                format!("restart.{key}"),
                format!("does not apply to strategy = \"{kind}\""),
            )
        };
        Ok(match r.strategy {
            RestartKind::None => {
                for (key, set) in [
                    ("attempts", r.attempts.is_some()),
                    ("delay", r.delay.is_some()),
                    ("max_failures", r.max_failures.is_some()),
                    ("interval", r.interval.is_some()),
                ] {
                    if set {
                        return Err(unexpected(key, "none"));
                    }
                }
                RestartStrategy::None
            }
            RestartKind::FixedDelay => {
                if r.max_failures.is_some() {
                    return Err(unexpected("max_failures", "fixed-delay"));
                }
                if r.interval.is_some() {
                    return Err(unexpected("interval", "fixed-delay"));
                }
                RestartStrategy::FixedDelay {
                    attempts: r.attempts.unwrap_or(3),
                    delay,
                }
            }
            RestartKind::FailureRate => {
                if r.attempts.is_some() {
                    return Err(unexpected("attempts", "failure-rate"));
                }
                RestartStrategy::FailureRate {
                    max_failures: r.max_failures.unwrap_or(3),
                    interval: duration(spec, "restart.interval", &r.interval, "1m")?,
                    delay,
                }
            }
        })
    }
}

/// Decides, failure by failure, whether to restart.
pub struct RestartTracker {
    strategy: RestartStrategy,
    failures: Vec<std::time::Instant>,
}

impl RestartTracker {
    pub fn new(strategy: RestartStrategy) -> Self {
        RestartTracker {
            strategy,
            failures: Vec::new(),
        }
    }

    /// Record a failure now; the delay before restarting, or `None` to give up.
    pub fn on_failure(&mut self) -> Option<Duration> {
        let now = std::time::Instant::now();
        self.failures.push(now);
        match &self.strategy {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                (self.failures.len() as u32 <= *attempts).then_some(*delay)
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                self.failures
                    .retain(|t| now.duration_since(*t) <= *interval);
                (self.failures.len() as u32 <= *max_failures).then_some(*delay)
            }
        }
    }

    /// Restarts so far.
    pub fn failures(&self) -> usize {
        self.failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn spec(text: &str) -> PipelineSpec {
        PipelineSpec::parse(Path::new("/p/job.toml"), text).unwrap()
    }

    #[test]
    fn defaults_follow_flink() {
        let s = CheckpointSettings::from_spec(&spec("")).unwrap();
        assert!(s.enabled && s.exactly_once);
        assert_eq!(s.interval, Duration::from_secs(10));
        assert_eq!(s.timeout, Duration::from_secs(600));
        assert_eq!((s.max_concurrent, s.retain), (1, 3));
        assert_eq!(s.dir, Path::new("/p/.weir/job"));
        assert_eq!(
            RestartStrategy::from_spec(&spec(""), true).unwrap(),
            RestartStrategy::FixedDelay {
                attempts: 3,
                delay: Duration::from_secs(1)
            }
        );
        assert_eq!(
            RestartStrategy::from_spec(&spec(""), false).unwrap(),
            RestartStrategy::None
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let e =
            CheckpointSettings::from_spec(&spec("[checkpoint]\ninterval = \"often\"")).unwrap_err();
        assert!(e.to_string().contains("checkpoint.interval"), "{e}");
        let e = RestartStrategy::from_spec(
            &spec("[restart]\nstrategy = \"fixed-delay\"\nmax_failures = 2"),
            true,
        )
        .unwrap_err();
        assert!(e.to_string().contains("restart.max_failures"), "{e}");
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
