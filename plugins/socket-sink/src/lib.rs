//! Built-in `socket` sink: writes each record's value and a newline to a TCP connection to
//! `address` (IP:port, which the node must grant in `grants.connect`).
//!
//! Delivery: at-least-once. Everything written since the last completed checkpoint is kept; if
//! the connection fails, the sink reconnects (exponential backoff, up to `connect_attempts` tries
//! per call) and resends all of it, so the peer may see some lines twice. After a crash the
//! records since the last checkpoint are replayed. What it cannot promise: that the peer
//! processed what its kernel acknowledged (TCP has no application-level ack).

use serde::{Deserialize, Serialize};
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use weir_sdk::{Config, Context, Record, Result, Sink, anyhow, bail, sink};

#[derive(Serialize, Deserialize)]
struct SocketSink {
    address: String,
    connect_attempts: u32,
    backoff_ms: u64,
    /// Bytes written since the last completed checkpoint: resent after a reconnect.
    #[serde(skip)]
    unconfirmed: Vec<u8>,
    /// (checkpoint, length of `unconfirmed` at its barrier).
    #[serde(skip)]
    marks: Vec<(u64, usize)>,
    #[serde(skip)]
    conn: Option<TcpStream>,
}

impl SocketSink {
    /// Connect, then resend every byte no completed checkpoint covers.
    fn reconnect(&mut self) -> Result<()> {
        let addr: SocketAddr = self
            .address
            .parse()
            .map_err(|_| anyhow!("address {:?} is not IP:port", self.address))?;
        let mut delay = self.backoff_ms;
        let mut last = String::new();
        for attempt in 1..=self.connect_attempts {
            match TcpStream::connect(addr) {
                Ok(mut s) => match s.write_all(&self.unconfirmed).and_then(|_| s.flush()) {
                    Ok(()) => {
                        self.conn = Some(s);
                        return Ok(());
                    }
                    Err(e) => last = e.to_string(),
                },
                Err(e) if e.kind() == ErrorKind::PermissionDenied => bail!(
                    "connecting to {addr} was refused by the sandbox: grant it with grants.connect = [\"{addr}\"]"
                ),
                Err(e) => last = e.to_string(),
            }
            weir_sdk::warn!("cannot send to {addr} (attempt {attempt}): {last}");
            std::thread::sleep(Duration::from_millis(delay));
            delay = (delay * 2).min(5_000);
        }
        bail!(
            "cannot send to {addr} after {} attempts: {last}",
            self.connect_attempts
        )
    }

    /// Send `bytes` (already appended to `unconfirmed`) on the live connection, or reconnect
    /// (which resends them with everything else unconfirmed).
    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(conn) = &mut self.conn {
            match conn.write_all(bytes).and_then(|_| conn.flush()) {
                Ok(()) => return Ok(()),
                Err(e) => weir_sdk::warn!("writing to {} failed: {e}; reconnecting", self.address),
            }
            self.conn = None;
        }
        self.reconnect()
    }
}

#[sink]
impl Sink for SocketSink {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            address: String,
            backoff_ms: Option<u64>,
            connect_attempts: Option<u32>,
        }
        let s: Settings = config.read()?;
        Ok(SocketSink {
            address: s.address,
            connect_attempts: s.connect_attempts.unwrap_or(10),
            backoff_ms: s.backoff_ms.unwrap_or(100),
            unconfirmed: Vec::new(),
            marks: Vec::new(),
            conn: None,
        })
    }

    fn write(&mut self, batch: Vec<Record>) -> Result<()> {
        let mut bytes = Vec::with_capacity(batch.iter().map(|r| r.value.len() + 1).sum());
        for r in &batch {
            bytes.extend_from_slice(&r.value);
            bytes.push(b'\n');
        }
        self.unconfirmed.extend_from_slice(&bytes);
        self.send(&bytes)
    }

    fn prepare(&mut self, checkpoint: u64) -> Result<()> {
        self.marks.push((checkpoint, self.unconfirmed.len()));
        Ok(())
    }

    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        // Bytes before a completed checkpoint's barrier are never replayed: stop keeping them.
        let Some(i) = self.marks.iter().rposition(|(id, _)| *id <= checkpoint) else {
            return Ok(());
        };
        let upto = self.marks[i].1;
        self.unconfirmed.drain(..upto);
        self.marks.drain(..=i);
        for m in &mut self.marks {
            m.1 -= upto;
        }
        Ok(())
    }

    fn restore(&mut self, _state: &[u8]) -> Result<()> {
        Ok(())
    }
}
