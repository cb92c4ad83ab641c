//! A native node's `config` table read into a connector's own `#[derive(Deserialize)]` options
//! type: unknown keys refused with the known ones, wrong types and choices named.
//!
//! Invariant: every error names the full key (`node.in.config.start`) and says what was
//! expected; no connector keeps a hand-written list of its keys.

use crate::config::{ConfigError, PipelineSpec};
use serde::de::DeserializeOwned;

/// Where a node's options come from, for their errors.
#[derive(Clone, Copy)]
pub struct At<'a> {
    pub spec: &'a PipelineSpec,
    pub uid: &'a str,
}

impl At<'_> {
    /// An error about `config.<key>`.
    pub fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        self.spec
            .invalid(format!("node.{}.config.{key}", self.uid), message)
    }
}

/// `table` as the options type `T`.
pub fn read<T: DeserializeOwned>(at: At, table: &toml::Table) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().message().to_owned();
        match named_field(&message) {
            // An unknown or missing key is an error of the table, which names the key.
            Some(field) if path.is_empty() || path == "." => at.invalid(field, message.clone()),
            Some(field) => at.invalid(&format!("{path}.{field}"), message.clone()),
            None if path.is_empty() || path == "." => {
                at.spec.invalid(format!("node.{}.config", at.uid), message)
            }
            None => at.invalid(&path, message),
        }
    })
}

/// The key serde's "unknown field `x`" or "missing field `x`" names.
fn named_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next()
}

/// A list of strings that may be written as one string.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A librdkafka property value: a string, or a number or boolean written as TOML.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Property {
    Text(String),
    Integer(i64),
    Float(f64),
    Flag(bool),
}

impl std::fmt::Display for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Property::Text(s) => f.write_str(s),
            Property::Integer(n) => write!(f, "{n}"),
            Property::Float(x) => write!(f, "{x}"),
            Property::Flag(b) => write!(f, "{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Opts {
        topic: String,
        #[serde(default)]
        mode: Mode,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Mode {
        #[default]
        AtLeastOnce,
        ExactlyOnce,
    }

    fn read_opts(text: &str) -> Result<Opts, ConfigError> {
        let spec = PipelineSpec::parse(Path::new("/p.toml"), "").unwrap();
        let table: toml::Table = toml::from_str(text).unwrap();
        read(
            At {
                spec: &spec,
                uid: "out",
            },
            &table,
        )
    }

    #[test]
    fn errors_name_the_key_and_what_it_may_be() {
        let ok = read_opts("topic = \"t\"\nmode = \"exactly-once\"").unwrap();
        assert!(matches!(ok.mode, Mode::ExactlyOnce) && ok.topic == "t");
        let e = read_opts("topic = \"t\"\nmode = \"twice\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("node.out.config.mode") && e.contains("exactly-once"),
            "{e}"
        );
        let e = read_opts("topic = \"t\"\ntpoic = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("node.out.config.tpoic"), "{e}");
        assert!(
            e.contains("unknown field `tpoic`") && e.contains("`topic`"),
            "{e}"
        );
        let e = read_opts("topic = 3").unwrap_err().to_string();
        assert!(e.contains("node.out.config.topic"), "{e}");
        let e = read_opts("").unwrap_err().to_string();
        assert!(
            e.contains("node.out.config.topic: missing field `topic`"),
            "{e}"
        );
    }
}
