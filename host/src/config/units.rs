//! Sizes and durations as the pipeline file writes them ("256MiB", "10s"), parsed once, when the
//! file is read, into typed values: a bad one fails the load with its key and its text.
//!
//! Invariant: no size or duration of the pipeline file is kept as text past loading.

use serde::de::{Deserializer, Error, Unexpected, Visitor};
use std::time::Duration;

/// A number of bytes: "256MiB", "64KB", "1000" (bytes), or a TOML integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

/// A duration: "10s", "500ms", "1h 30m".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub Duration);

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size such as \"256MiB\"")
            }
            fn visit_str<E: Error>(self, text: &str) -> Result<Size, E> {
                super::parse_size(text)
                    .map(Size)
                    .ok_or_else(|| E::custom(format!("{text:?} is not a size such as \"256MiB\"")))
            }
            fn visit_i64<E: Error>(self, n: i64) -> Result<Size, E> {
                u64::try_from(n)
                    .map(Size)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(n), &self))
            }
            fn visit_u64<E: Error>(self, n: u64) -> Result<Size, E> {
                Ok(Size(n))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Span;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as \"10s\" or \"500ms\"")
            }
            fn visit_str<E: Error>(self, text: &str) -> Result<Span, E> {
                super::parse_duration(text).map(Span).ok_or_else(|| {
                    E::custom(format!(
                        "{text:?} is not a duration such as \"10s\" or \"500ms\""
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `span`'s duration, or `default`.
pub fn or(span: Option<Span>, default: Duration) -> Duration {
    span.map_or(default, |s| s.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T {
        size: Option<Size>,
        span: Option<Span>,
    }

    #[test]
    fn sizes_and_durations_parse_once_or_say_what_is_wrong() {
        let t: T = toml::from_str("size = \"64KiB\"\nspan = \"250ms\"").unwrap();
        assert_eq!(t.size, Some(Size(64 * 1024)));
        assert_eq!(t.span, Some(Span(Duration::from_millis(250))));
        let t: T = toml::from_str("size = 1000").unwrap();
        assert_eq!(t.size, Some(Size(1000)));
        let e = toml::from_str::<T>("size = \"lots\"").err().unwrap();
        assert!(e.message().contains("\"lots\" is not a size"), "{e}");
        let e = toml::from_str::<T>("span = \"soon\"").err().unwrap();
        assert!(e.message().contains("\"soon\" is not a duration"), "{e}");
        assert!(toml::from_str::<T>("size = -1").is_err());
    }
}
