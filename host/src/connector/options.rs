//! Typed reads of a native node's `config` table.
//!
//! Invariant: every error names the full key (`node.in.config.start`), and a key no connector
//! reads is refused by [`Options::finish`] rather than silently ignored.

use crate::config::{ConfigError, PipelineSpec};
use std::collections::BTreeSet;
use std::time::Duration;

/// A node's `config` table, read key by key.
pub struct Options<'a> {
    spec: &'a PipelineSpec,
    uid: &'a str,
    table: &'a toml::Table,
    read: BTreeSet<&'a str>,
}

impl<'a> Options<'a> {
    pub fn new(spec: &'a PipelineSpec, uid: &'a str, table: &'a toml::Table) -> Self {
        Options {
            spec,
            uid,
            table,
            read: BTreeSet::new(),
        }
    }

    /// An error about `config.<key>`.
    pub fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        self.spec
            .invalid(format!("node.{}.config.{key}", self.uid), message)
    }

    fn get(&mut self, key: &'a str) -> Option<&'a toml::Value> {
        self.read.insert(key);
        self.table.get(key)
    }

    pub fn string(&mut self, key: &'a str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.invalid(key, format!("must be a string, not {}", other.type_str())))
            }
        }
    }

    pub fn required_string(&mut self, key: &'a str, example: &str) -> Result<String, ConfigError> {
        self.string(key)?
            .ok_or_else(|| self.invalid(key, format!("missing: add {key} = {example}")))
    }

    /// One of `choices` (the first is the default).
    pub fn choice(&mut self, key: &'a str, choices: &[&str]) -> Result<String, ConfigError> {
        let v = self.string(key)?.unwrap_or_else(|| choices[0].to_owned());
        if choices.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(self.invalid(key, format!("{v:?} is not one of: {}", choices.join(", "))))
        }
    }

    /// The value `choices` pairs with the chosen name (the first is the default).
    pub fn pick<T: Copy>(&mut self, key: &'a str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let name = self.choice(key, &names)?;
        Ok(choices
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .expect("choice returns one of the names"))
    }

    pub fn bool(&mut self, key: &'a str) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(false),
            Some(toml::Value::Boolean(b)) => Ok(*b),
            Some(other) => Err(self.invalid(
                key,
                format!("must be true or false, not {}", other.type_str()),
            )),
        }
    }

    pub fn integer(&mut self, key: &'a str) -> Result<Option<i64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) => Ok(Some(*i)),
            Some(other) => {
                Err(self.invalid(key, format!("must be an integer, not {}", other.type_str())))
            }
        }
    }

    pub fn duration(&mut self, key: &'a str) -> Result<Option<Duration>, ConfigError> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => crate::config::parse_duration(&s).map(Some).ok_or_else(|| {
                self.invalid(key, format!("{s:?} is not a duration such as \"15m\""))
            }),
        }
    }

    /// A list of strings; a single string counts as a list of one.
    pub fn strings(&mut self, key: &'a str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        self.invalid(key, format!("must list strings, not {}", v.type_str()))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.invalid(
                key,
                format!("must be a list of strings, not {}", other.type_str()),
            )),
        }
    }

    /// A table, e.g. `properties = { "fetch.min.bytes" = "1" }`.
    pub fn table(&mut self, key: &'a str) -> Result<Option<&'a toml::Table>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::Table(t)) => Ok(Some(t)),
            Some(other) => {
                Err(self.invalid(key, format!("must be a table, not {}", other.type_str())))
            }
        }
    }

    /// Refuse every key that was not read.
    pub fn finish(self, known: &str) -> Result<(), ConfigError> {
        match self.table.keys().find(|k| !self.read.contains(k.as_str())) {
            None => Ok(()),
            Some(k) => Err(self.invalid(k, format!("unknown option (known: {known})"))),
        }
    }
}
