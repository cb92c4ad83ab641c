//! A node's `config` table and its place in the job graph, as a plugin sees them: read whole
//! into the plugin's own `#[derive(Deserialize)]` type ([`Config::read`]), or key by key.
//!
//! The host passes the table as one JSON document (`weir:plugin@0.3.0`), values with their own
//! types; a value written as text where the type wants a number, a flag or a list is parsed
//! from its text (`n = "7"`, as older contracts passed every value), so both spellings work.
//!
//! Invariant: a missing or malformed key is an error that names the key, never a silent default
//! the plugin author did not choose; an unknown key is refused, naming the known ones.

use anyhow::{Context as _, Result, anyhow};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::str::FromStr;

/// The `config` table of a node in the pipeline file.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Every value as text (arrays one item per line), for the key-by-key calls.
    entries: Vec<(String, String)>,
    /// The table itself, for [`Config::read`].
    table: serde_json::Map<String, Value>,
}

impl Config {
    /// A config of text values (as a plugin's native tests write it).
    pub fn new(entries: Vec<(String, String)>) -> Self {
        let table = entries
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Config { entries, table }
    }

    /// The JSON object the host passed to `open`; an error if it is not one.
    pub fn from_document(document: &str) -> Result<Self> {
        let table: serde_json::Map<String, Value> =
            serde_json::from_str(document).with_context(|| {
                format!("the host passed a config that is not a JSON object: {document:.80}")
            })?;
        let entries = table.iter().map(|(k, v)| (k.clone(), text(v))).collect();
        Ok(Config { entries, table })
    }

    /// The value of `key` as text, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Refuse keys not in `known`, naming the first unknown one and the known ones: a typo
    /// in a pipeline file must not pass silently. [`Config::read`] with
    /// `#[serde(deny_unknown_fields)]` does this for you.
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

    /// All entries as text, in key order.
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
    /// Values come with their pipeline-file types (nested tables into nested structs); a number,
    /// flag or list given as text is parsed from it. With `deny_unknown_fields` a key the type
    /// does not have is refused with the known ones; every error names its key.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T> {
        let map = de::value::MapDeserializer::new(self.table.iter().map(|(k, v)| {
            (
                k.as_str(),
                Field {
                    key: k,
                    value: Cow::Borrowed(v),
                },
            )
        }));
        T::deserialize(map)
            .map_err(|e: de::value::Error| anyhow!("{}", in_our_words(&e.to_string())))
    }
}

/// A value as text: a string as it is, an array one item per line, others in JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join("\n"),
        other => other.to_string(),
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

/// One config value and the key it is under (owned: a line of a text list).
struct Field<'a> {
    key: &'a str,
    value: Cow<'a, Value>,
}

impl<'de> IntoDeserializer<'de, de::value::Error> for Field<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// `e`, about the value of config key `key`.
fn keyed(key: &str, value: &Value, e: impl std::fmt::Display) -> de::value::Error {
    de::Error::custom(format!("`{key}` = {value}: {e}"))
}

impl Field<'_> {
    /// The value as `T`: a JSON number or flag as it is, a string parsed from its text.
    fn scalar<T: FromStr + DeserializeOwned>(
        &self,
        what: &str,
    ) -> std::result::Result<T, de::value::Error> {
        let wrong = || de::Error::custom(format!("`{}` = {} is not {what}", self.key, self.value));
        match &*self.value {
            Value::String(s) => s.trim().parse().map_err(|_| wrong()),
            Value::Number(_) | Value::Bool(_) => {
                serde_json::from_value(self.value.clone().into_owned()).map_err(|_| wrong())
            }
            _ => Err(wrong()),
        }
    }
}

macro_rules! scalars {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Self::Error> {
            v.$visit(self.scalar::<$ty>($what)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Field<'de> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Self::Error> {
        let r: std::result::Result<V::Value, de::value::Error> = match &*self.value {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => v.visit_u64(u),
                (_, Some(i), _) => v.visit_i64(i),
                (_, _, f) => v.visit_f64(f.unwrap_or(f64::NAN)),
            },
            Value::String(s) => v.visit_str(s),
            Value::Array(_) => return self.deserialize_seq(v),
            Value::Object(_) => return self.deserialize_map(v),
        };
        r.map_err(|e| keyed(self.key, &self.value, e))
    }

    scalars! {
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

    /// A string as it is; a number or flag as its text (`name = 5` is the name "5").
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Self::Error> {
        match &*self.value {
            Value::String(s) => v.visit_str(s),
            Value::Number(_) | Value::Bool(_) => v.visit_string(self.value.to_string()),
            other => Err(keyed(self.key, other, "not text")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(
        self,
        v: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(
        self,
        v: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        match &*self.value {
            Value::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    /// An array item by item; a string one item per line.
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Self::Error> {
        let key = self.key;
        let field = |value| Field { key, value };
        match self.value {
            Cow::Borrowed(Value::Array(items)) => v.visit_seq(de::value::SeqDeserializer::new(
                items.iter().map(|i| field(Cow::Borrowed(i))),
            )),
            Cow::Borrowed(Value::String(s)) => v.visit_seq(de::value::SeqDeserializer::new(
                s.lines()
                    .map(|l| field(Cow::Owned(Value::String(l.to_owned())))),
            )),
            other => Err(keyed(key, &other, "not a list")),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Self::Error> {
        let Cow::Borrowed(Value::Object(table)) = self.value else {
            return Err(keyed(self.key, &self.value, "not a table"));
        };
        let key = self.key;
        v.visit_map(de::value::MapDeserializer::new(table.iter().map(
            move |(k, value)| {
                (
                    k.as_str(),
                    Field {
                        key,
                        value: Cow::Borrowed(value),
                    },
                )
            },
        )))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        self.deserialize_map(v)
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
        match &*self.value {
            Value::String(s) => v
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: de::value::Error| keyed(self.key, &self.value, e)),
            other => Err(keyed(self.key, other, "not one of the names it may be")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(
        self,
        v: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        char bytes byte_buf unit unit_struct tuple tuple_struct identifier
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nested {
        window_ms: i64,
        ratio: f64,
        keys: Vec<u32>,
        size: crate::config::Size,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        name: String,
        on: bool,
    }

    #[test]
    fn the_document_reads_with_its_own_types_and_text_still_parses() {
        let doc = r#"{"window_ms": 60000, "ratio": 0.5, "keys": [1, 2], "size": "8MiB",
                      "inner": {"name": 5, "on": true}}"#;
        let c = Config::from_document(doc).unwrap();
        let n: Nested = c.read().unwrap();
        assert_eq!(
            (n.window_ms, n.ratio, n.keys.as_slice()),
            (60_000, 0.5, &[1, 2][..])
        );
        assert_eq!(
            (n.size.0, n.inner.name.as_str(), n.inner.on),
            (8 << 20, "5", true)
        );
        assert_eq!(c.get("keys"), Some("1\n2"));
        // Numbers written as text, as older contracts passed them.
        let text = r#"{"window_ms": "60000", "ratio": "0.5", "keys": "1\n2", "size": 1000,
                       "inner": {"name": "x", "on": "true"}}"#;
        let n: Nested = Config::from_document(text).unwrap().read().unwrap();
        assert_eq!(
            (n.window_ms, n.keys.as_slice(), n.size.0),
            (60_000, &[1, 2][..], 1000)
        );
        let e = Config::from_document(r#"{"window_ms": true}"#)
            .unwrap()
            .read::<Nested>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("`window_ms` = true is not an integer"), "{e}");
        let e = Config::from_document(
            r#"{"window_ms": 1, "ratio": 1, "keys": [], "size": 1, "inner": {"nmae": "x"}}"#,
        )
        .unwrap()
        .read::<Nested>()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown config key `nmae` (known keys: name, on)"),
            "{e}"
        );
        assert!(Config::from_document("[1]").is_err());
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
