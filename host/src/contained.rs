//! Panics of a dependency, contained: sled 0.34 panics on some damaged stores instead of
//! returning `Error::Corruption`, and a panic must never be how weir answers a damaged file.
//!
//! Invariant: a panic inside [`contain`] becomes an error value on the same thread and prints
//! nothing (no "thread panicked at", no backtrace note); panics anywhere else reach the panic
//! hook that was installed before, unchanged.

use std::cell::Cell;
use std::sync::Once;

thread_local! {
    /// Set while this thread runs inside [`contain`].
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Run `f`; if it panics, return the panic's message instead (printing nothing).
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = CONTAINING.with(|c| c.replace(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(was));
    outcome.map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_a_value_passes_through() {
        assert_eq!(contain(|| 7), Ok(7));
        let e = contain(|| -> u8 { panic!("damaged at {}", 42) }).unwrap_err();
        assert_eq!(e, "damaged at 42");
        assert_eq!(contain(|| -> u8 { panic!("plain") }).unwrap_err(), "plain");
    }
}
