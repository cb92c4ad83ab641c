//! Checkpoint settings: the `[checkpoint]` table validated into durations and numbers, with
//! Flink's meanings and defaults.
//!
//! Invariant: every bad value is an error naming its key; nothing falls back silently.

use super::units::or;
use super::{CheckpointMode, ConfigError, PipelineSpec};
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

impl CheckpointSettings {
    pub fn from_spec(spec: &PipelineSpec) -> Result<Self, ConfigError> {
        let c = &spec.file.checkpoint;
        let interval = or(c.interval, Duration::from_secs(10));
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
            timeout: or(c.timeout, Duration::from_secs(600)),
            max_concurrent: c.max_concurrent,
            min_pause: or(c.min_pause, Duration::ZERO),
            retain: c.retain,
            dir,
        })
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
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = PipelineSpec::parse(
            Path::new("/p/job.toml"),
            "[checkpoint]\ninterval = \"often\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("checkpoint.interval"), "{e}");
        assert!(e.to_string().contains("\"often\" is not a duration"), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
        let e =
            CheckpointSettings::from_spec(&spec("[checkpoint]\ninterval = \"0s\"")).unwrap_err();
        assert!(e.to_string().contains("checkpoint.interval"), "{e}");
    }
}
