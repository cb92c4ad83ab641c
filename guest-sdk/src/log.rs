//! Logging to the host, and panics routed to it.
//!
//! Invariant: once `open` ran, a panic message reaches the host's log (at error level, prefixed
//! `panic:`) before the instance traps, so the host can report why the node failed.

use std::sync::OnceLock;

/// Severity of a log message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

static SINK: OnceLock<fn(Level, &str)> = OnceLock::new();

/// Route logs and panics to the host. Called by the generated `open`.
pub fn install(sink: fn(Level, &str)) {
    if SINK.set(sink).is_ok() {
        std::panic::set_hook(Box::new(|info| {
            let msg = match info.payload().downcast_ref::<&str>() {
                Some(s) => (*s).to_string(),
                None => match info.payload().downcast_ref::<String>() {
                    Some(s) => s.clone(),
                    None => "(non-string panic payload)".to_string(),
                },
            };
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            log(Level::Error, &format!("panic: {msg}{at}"));
        }));
    }
}

/// Write `msg` to the host's log. Before `open` (no host link yet) it goes to stderr.
pub fn log(level: Level, msg: &str) {
    match SINK.get() {
        Some(sink) => sink(level, msg),
        None => eprintln!("{level:?}: {msg}"),
    }
}

/// `weir_sdk::info!("read {} lines", n)`
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Info, &format!($($t)*)) } }
/// `weir_sdk::warn!(...)`
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warn, &format!($($t)*)) } }
/// `weir_sdk::error!(...)`
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Error, &format!($($t)*)) } }
/// `weir_sdk::debug!(...)`
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Debug, &format!($($t)*)) } }
