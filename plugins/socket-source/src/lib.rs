//! Built-in `socket` source: connects to `address` (IP:port, which the node must grant in
//! `grants.connect`) and emits one record per newline-delimited line it receives.
//!
//! Delivery: at-most-once. Lines are not replayable: whatever arrived after the last checkpoint
//! is lost in a crash, and nothing is ever emitted twice. On a closed or failed connection it
//! reconnects with exponential backoff (`backoff_ms` doubling up to `max_backoff_ms`); with
//! `max_connections = N` it ends after the N-th connection closes (0, the default: never).

use serde::{Deserialize, Serialize};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use weir_sdk::{Config, Context, Poll, Record, Result, Source, anyhow, source};

#[derive(Serialize, Deserialize)]
struct SocketSource {
    address: String,
    max_connections: u64,
    backoff_ms: u64,
    max_backoff_ms: u64,
    #[serde(skip)]
    conn: Option<TcpStream>,
    #[serde(skip)]
    partial: Vec<u8>,
    #[serde(skip)]
    connections: u64,
    #[serde(skip)]
    retry_at: Option<Instant>,
    #[serde(skip)]
    backoff: u64,
    /// Config `max_line`: the longest line accepted, in bytes (default 8 MiB).
    max_line: u64,
}

impl SocketSource {
    fn connect(&mut self) -> Result<bool> {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Ok(false);
        }
        let addr: SocketAddr = self
            .address
            .parse()
            .map_err(|_| anyhow!("address {:?} is not IP:port", self.address))?;
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_nonblocking(true)?;
                self.conn = Some(s);
                self.connections += 1;
                self.backoff = self.backoff_ms;
                self.retry_at = None;
                weir_sdk::info!("connected to {addr}");
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(anyhow!(
                "connecting to {addr} was refused by the sandbox: grant it with grants.connect = [\"{addr}\"]"
            )),
            Err(e) => {
                weir_sdk::warn!(
                    "cannot connect to {addr}: {e}; retrying in {} ms",
                    self.backoff
                );
                self.wait();
                Ok(false)
            }
        }
    }

    /// A line of `len` bytes (without its terminator) is refused past `max_line`.
    fn check_line(&self, len: usize) -> Result<()> {
        if len as u64 > self.max_line {
            weir_sdk::bail!(
                "a line from {} is longer than max_line ({} bytes). Raise `max_line` in the node's config (and `memory` on the node if the lines are really that long)",
                self.address,
                self.max_line
            );
        }
        Ok(())
    }

    fn wait(&mut self) {
        self.retry_at = Some(Instant::now() + Duration::from_millis(self.backoff));
        self.backoff = (self.backoff * 2).min(self.max_backoff_ms);
    }
}

#[source]
impl Source for SocketSource {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            address: String,
            backoff_ms: Option<u64>,
            max_backoff_ms: Option<u64>,
            max_connections: Option<u64>,
            max_line: Option<weir_sdk::config::Size>,
        }
        let s: Settings = config.read()?;
        let backoff_ms = s.backoff_ms.unwrap_or(100);
        Ok(SocketSource {
            address: s.address,
            max_connections: s.max_connections.unwrap_or(0),
            backoff_ms,
            max_backoff_ms: s.max_backoff_ms.unwrap_or(10_000),
            conn: None,
            partial: Vec::new(),
            connections: 0,
            retry_at: None,
            backoff: backoff_ms,
            max_line: s
                .max_line
                .map_or(weir_sdk::lines::DEFAULT_MAX_LINE, |m| m.0),
        })
    }

    fn poll(&mut self, max: usize) -> Result<Poll> {
        if self.conn.is_none() {
            if self.max_connections > 0 && self.connections >= self.max_connections {
                return Ok(Poll::End);
            }
            if !self.connect()? {
                return Ok(Poll::Idle);
            }
        }
        let mut buf = [0u8; 64 * 1024];
        let mut batch = Vec::new();
        let conn = self.conn.as_mut().expect("connected above");
        let closed = loop {
            match conn.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => {
                    self.partial.extend_from_slice(&buf[..n]);
                    if self.partial.len() > 1 << 20 || n < buf.len() {
                        break false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    weir_sdk::warn!("connection to {} failed: {e}", self.address);
                    break true;
                }
            }
        };
        let mut start = 0;
        while batch.len() < max {
            let Some(i) = self.partial[start..].iter().position(|b| *b == b'\n') else {
                break;
            };
            let mut line = &self.partial[start..start + i];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            self.check_line(line.len())?;
            batch.push(Record::new(line.to_vec()));
            start += i + 1;
        }
        self.partial.drain(..start);
        if !self.partial.contains(&b'\n') {
            // A `\r` at the end may be the start of the line's terminator.
            let tail = self.partial.len() - usize::from(self.partial.last() == Some(&b'\r'));
            self.check_line(tail)?;
        }
        if closed {
            if !self.partial.is_empty() {
                batch.push(Record::new(std::mem::take(&mut self.partial)));
            }
            self.conn = None;
            self.wait();
            weir_sdk::info!("connection {} to {} closed", self.connections, self.address);
        }
        Ok(if batch.is_empty() {
            Poll::Idle
        } else {
            Poll::Batch(batch)
        })
    }

    fn restore(&mut self, _state: &[u8]) -> Result<()> {
        Ok(()) // at-most-once: nothing to rewind
    }
}
