//! Test guest: a packed operator written against the WIT directly (no SDK) that answers every
//! batch with bytes that are not a packed batch, to prove the host refuses them by name.
//!
//! Config `reply`: `garbage` (a count far beyond the bytes), `trailing` (a valid empty batch
//! plus a stray byte) or `echo` (the input, unchanged: the well-formed control).

#![allow(unsafe_code)] // the code `wit_bindgen::generate!` emits

wit_bindgen::generate!({
    path: "../../../wit",
    world: "packed-operator-plugin",
});

use exports::weir::plugin::packed_operator::Guest;
use exports::weir::plugin::state::Guest as State;
use std::cell::RefCell;

thread_local! {
    static REPLY: RefCell<String> = const { RefCell::new(String::new()) };
}

struct Garbage;

impl Guest for Garbage {
    fn open(cfg: Vec<(String, String)>, _ctx: weir::plugin::types::Context) -> Result<(), String> {
        let reply = cfg
            .into_iter()
            .find(|(k, _)| k == "reply")
            .map(|(_, v)| v)
            .unwrap_or_else(|| "garbage".into());
        REPLY.with(|r| *r.borrow_mut() = reply);
        Ok(())
    }

    fn process(batch: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(REPLY.with(|r| match r.borrow().as_str() {
            "echo" => batch,
            "trailing" => vec![0, 7],
            _ => vec![0xff, 0xff, 0xff, 0x0f, 1, 2, 3],
        }))
    }

    fn on_watermark(_ts: i64) -> Result<Vec<u8>, String> {
        Ok(vec![0])
    }
}

impl State for Garbage {
    fn snapshot() -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    fn restore(_state: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
}

export!(Garbage);
