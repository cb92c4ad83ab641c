//! A node's `config` table and its place in the job graph, as a plugin sees them: read key by
//! key, or whole into the plugin's own `#[derive(Deserialize)]` type ([`Config::read`]).
//!
//! Invariant: a missing or malformed key is an error that names the key, never a silent default
//! the plugin author did not choose; an unknown key is refused, naming the known ones.

use anyhow::{Context as _, Result, anyhow};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
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

    /// The whole table as the plugin's own config type, e.g.
    ///
    /// ```text
    /// #[derive(serde::Deserialize)]
    /// #[serde(deny_unknown_fields)]
    /// struct Settings { path: String, #[serde(default)] rate: Option<u32> }
    /// let settings: Settings = config.read()?;
    /// ```
    ///
    /// Numbers and booleans are parsed from their text, a list from its lines (as the host
    /// renders a TOML array). With `deny_unknown_fields` a key the type does not have is refused
    /// with the known ones; every error names its key.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T> {
        let map = de::value::MapDeserializer::new(
            self.entries
                .iter()
                .map(|(k, v)| (k.as_str(), Text { key: k, text: v })),
        );
        T::deserialize(map)
            .map_err(|e: de::value::Error| anyhow!("{}", in_our_words(&e.to_string())))
    }
}

/// serde's "unknown field" and "missing field" said as [`Config::only`] and
/// [`Config::require`] say them.
fn in_our_words(message: &str) -> String {
    let quoted =
        |s: &str| -> Vec<String> { s.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = quoted(rest);
        if let Some((key, known)) = names.split_first() {
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            return format!("unknown config key `{key}` (known keys: {known})");
        }
    }
    if let Some(rest) = message.strip_prefix("missing field ")
        && let Some(key) = quoted(rest).first()
    {
        return format!("missing config key `{key}`: add it to the node's [config] table");
    }
    if message.starts_with('`') {
        // A value's own error, which names its key.
        return format!("config key {message}");
    }
    format!("config: {message}")
}

/// One config value: text, parsed into whatever the plugin's type asks for.
struct Text<'a> {
    key: &'a str,
    text: &'a str,
}

impl<'de> IntoDeserializer<'de, de::value::Error> for Text<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// `e`, about the value `text` of config key `key`.
fn keyed(key: &str, text: &str, e: de::value::Error) -> de::value::Error {
    de::Error::custom(format!("`{key}` = {text:?}: {e}"))
}

impl Text<'_> {
    fn parse<T: FromStr>(&self, what: &str) -> std::result::Result<T, de::value::Error> {
        self.text.trim().parse().map_err(|_| {
            de::Error::custom(format!("`{}` = {:?} is not {what}", self.key, self.text))
        })
    }
}

macro_rules! parsed {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Self::Error> {
            v.$visit(self.parse::<$ty>($what)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Text<'de> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Self::Error> {
        let (key, text) = (self.key, self.text);
        v.visit_borrowed_str(text).map_err(|e| keyed(key, text, e))
    }

    parsed! {
        deserialize_bool visit_bool bool, "true or false";
        deserialize_i8 visit_i8 i8, "an integer";
        deserialize_i16 visit_i16 i16, "an integer";
        deserialize_i32 visit_i32 i32, "an integer";
        deserialize_i64 visit_i64 i64, "an integer";
        deserialize_u8 visit_u8 u8, "a whole number";
        deserialize_u16 visit_u16 u16, "a whole number";
        deserialize_u32 visit_u32 u32, "a whole number";
        deserialize_u64 visit_u64 u64, "a whole number";
        deserialize_f32 visit_f32 f32, "a number";
        deserialize_f64 visit_f64 f64, "a number";
    }

    fn deserialize_option<V: Visitor<'de>>(
        self,
        v: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        v.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Self::Error> {
        let key = self.key;
        let lines = self.text.lines().map(move |text| Text { key, text });
        v.visit_seq(de::value::SeqDeserializer::new(lines))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        let (key, text) = (self.key, self.text);
        v.visit_enum(text.into_deserializer())
            .map_err(|e: de::value::Error| keyed(key, text, e))
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct tuple tuple_struct map struct identifier
        ignored_any
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

/// A size in bytes in a plugin's config type: `"8MiB"`, `"64KB"`, `"1000"` (bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_size(&text).map(Size).ok_or_else(|| {
            de::Error::custom("not a size such as \"8MiB\", \"64KB\" or \"1000\" (bytes)")
        })
    }
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "snake_case")]
    struct Settings {
        n: u32,
        name: String,
        #[serde(default)]
        values: Vec<String>,
        #[serde(default)]
        flag: Option<bool>,
        #[serde(default)]
        mode: Mode,
    }

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Mode {
        #[default]
        Plain,
        DeadLetter,
    }

    #[test]
    fn the_table_reads_into_the_plugins_own_type() {
        let c = Config::new(vec![
            ("n".into(), "7".into()),
            ("name".into(), "x".into()),
            ("values".into(), "a\nb".into()),
            ("flag".into(), "true".into()),
            ("mode".into(), "dead-letter".into()),
        ]);
        let s: Settings = c.read().unwrap();
        assert_eq!((s.n, s.name.as_str(), s.flag), (7, "x", Some(true)));
        assert_eq!(s.values, ["a", "b"]);
        assert_eq!(s.mode, Mode::DeadLetter);
        let e = Config::new(vec![("n".into(), "7".into()), ("nmae".into(), "x".into())])
            .read::<Settings>()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown config key `nmae` (known keys: n, name, values, flag, mode)"
        );
        let e = Config::new(vec![
            ("n".into(), "seven".into()),
            ("name".into(), "x".into()),
        ])
        .read::<Settings>()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`n` = \"seven\" is not a whole number"), "{e}");
        let e = Config::new(vec![
            ("n".into(), "1".into()),
            ("name".into(), "x".into()),
            ("mode".into(), "loud".into()),
        ])
        .read::<Settings>()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`mode` = \"loud\"") && e.contains("dead-letter"),
            "{e}"
        );
        let e = cfg_missing_name();
        assert!(e.contains("missing config key `name`"), "{e}");
    }

    fn cfg_missing_name() -> String {
        Config::new(vec![("n".into(), "1".into())])
            .read::<Settings>()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_key() {
        let e = cfg().require("path").unwrap_err().to_string();
        assert!(e.contains("`path`"), "{e}");
        let e = format!("{:#}", cfg().parse_or::<u32>("name", 0).unwrap_err());
        assert!(e.contains("`name`"), "{e}");
    }
}
