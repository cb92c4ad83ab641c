//! A node's `config` table and its place in the job graph, as a plugin sees them.
//!
//! Invariant: a missing or malformed key is an error that names the key, never a silent default
//! the plugin author did not choose.

use anyhow::{Context as _, Result, anyhow};
use std::str::FromStr;

/// The `config` table of a node in the pipeline file; every value is a string.
#[derive(Clone, Debug, Default)]
pub struct Config {
    entries: Vec<(String, String)>,
}

impl Config {
    /// Wrap the key/value pairs the host passed to `open`.
    pub fn new(entries: Vec<(String, String)>) -> Self {
        Config { entries }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Refuse keys not in `known`, naming the first unknown one and the known ones: a typo
    /// in a pipeline file must not pass silently. Call it first in `open`.
    pub fn only(&self, known: &[&str]) -> Result<()> {
        match self
            .entries
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((k, _)) => Err(anyhow!(
                "unknown config key `{k}` (known keys: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )),
        }
    }

    /// The value of `key`, or an error that says the node's config needs it.
    pub fn require(&self, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| {
            anyhow!("missing config key `{key}`: add it to the node's [config] table")
        })
    }

    /// `key` parsed as `T`, or `default` when it is not set.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .with_context(|| format!("config key `{key}` = {raw:?} is not valid")),
        }
    }

    /// `key` as a size in bytes (`"8MiB"`, `"64KB"`, `"1000"`), or `default` when it is not set.
    pub fn size_or(&self, key: &str, default: u64) -> Result<u64> {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => parse_size(raw).ok_or_else(|| {
                anyhow!("config key `{key}` = {raw:?} is not a size such as \"8MiB\", \"64KB\" or \"1000\" (bytes)")
            }),
        }
    }

    /// All entries, in the order the pipeline file gave them.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }
}

/// Where this plugin instance sits in the job graph.
#[derive(Clone, Debug)]
pub struct Context {
    /// The node's uid (its name in the pipeline file).
    pub node: String,
    /// Index of this parallel instance, `0 .. parallelism`.
    pub subtask: u32,
    /// How many parallel instances of this node run.
    pub parallelism: u32,
}

/// `384MB`, `64KiB`, `1000` (bytes): decimal (KB, MB, GB) and binary (KiB, MiB, GiB) units.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split].parse().ok()?;
    let mult = match t[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::new(vec![("n".into(), "7".into()), ("name".into(), "x".into())])
    }

    #[test]
    fn keys_are_found_parsed_or_defaulted() {
        assert_eq!(cfg().get("name"), Some("x"));
        assert_eq!(cfg().parse_or("n", 0u32).unwrap(), 7);
        assert_eq!(cfg().parse_or("missing", 3u32).unwrap(), 3);
    }

    #[test]
    fn errors_name_the_key() {
        let e = cfg().require("path").unwrap_err().to_string();
        assert!(e.contains("`path`"), "{e}");
        let e = format!("{:#}", cfg().parse_or::<u32>("name", 0).unwrap_err());
        assert!(e.contains("`name`"), "{e}");
    }
}
