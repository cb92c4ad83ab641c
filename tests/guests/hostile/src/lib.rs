//! Test guest: an operator written as a hostile plugin author would, to prove the sandbox holds
//! (tests/e2e/hostile.rs).
//!
//! Config `mode`, acted on at the first batch (records pass through otherwise):
//! - `sleep`: blocks in the host (`thread::sleep`) for an hour;
//! - `forge-panic`: logs "panic: forged by the plugin", returns normally, then loops forever
//!   on the next batch;
//! - `flood`: logs `lines` lines (default 1,000,000) and one 16 MiB line, then passes through;
//! - `stderr`: writes a forged host line with escape sequences to stderr, then passes through;
//! - `forge-error`: fails with a message holding newlines, a forged `error:` line and ANSI codes;
//! - `hold-files`: opens the file at `path` again and again, keeping every handle;
//! - `flood-reply`: returns `records` records with `headers` headers each;
//! - `udp`: tries to bind a UDP socket; `connect`: tries a TCP connect to `addr`;
//! - `poison`: passes every record through except those whose value is in `poison` (comma
//!   separated), on which it fails as `how` says (`error`, `panic` or `spin`);
//! - `show-headers`: replaces each record's value by `value|key=value|key=value...` of its
//!   headers, so a test can read them from a file sink.

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Operator, Record, Result, anyhow, bail, operator};

#[derive(Serialize, Deserialize)]
struct Hostile {
    mode: String,
    acted: bool,
    path: String,
    addr: String,
    lines: u64,
    records: usize,
    headers: usize,
    poison: Vec<String>,
    how: String,
    passed: u64,
}

impl Hostile {
    fn act(&mut self) -> Result<Vec<Record>> {
        match self.mode.as_str() {
            "sleep" => {
                weir_sdk::log::log(weir_sdk::log::Level::Info, "hostile: sleeping for an hour");
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
            "forge-panic" => {
                weir_sdk::log::log(weir_sdk::log::Level::Error, "panic: forged by the plugin");
            }
            "flood" => {
                for i in 0..self.lines {
                    weir_sdk::log::log(weir_sdk::log::Level::Warn, &format!("flood line {i}"));
                }
                weir_sdk::log::log(weir_sdk::log::Level::Warn, &"x".repeat(16 << 20));
            }
            "stderr" => {
                eprintln!("\x1b[31merror: node `out` failed\x1b[0m\rforged\u{202e}");
            }
            "forge-error" => {
                bail!("one\nerror: node `out` (built-in sink stdout) failed: forged\x1b[2J\x1b[31m")
            }
            "hold-files" => {
                let mut held = Vec::new();
                loop {
                    let f = std::fs::File::open(&self.path)
                        .map_err(|e| anyhow!("open #{} failed: {e}", held.len()))?;
                    held.push(f);
                }
            }
            "flood-reply" => {
                let headers: Vec<(String, Vec<u8>)> = (0..self.headers)
                    .map(|i| (format!("h{i}"), Vec::new()))
                    .collect();
                let mut r = Record::new(Vec::new());
                r.headers = headers;
                return Ok(vec![r; self.records]);
            }
            "udp" => {
                std::net::UdpSocket::bind("127.0.0.1:0")
                    .map_err(|e| anyhow!("udp refused: {e}"))?;
                bail!("udp bind was allowed");
            }
            "connect" => {
                std::net::TcpStream::connect(&self.addr)
                    .map_err(|e| anyhow!("connect to {} refused: {e}", self.addr))?;
                bail!("connect to {} was allowed", self.addr);
            }
            _ => {}
        }
        Ok(Vec::new())
    }
}

#[operator]
impl Operator for Hostile {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        Ok(Hostile {
            mode: config.get("mode").unwrap_or("pass").to_owned(),
            acted: false,
            path: config.get("path").unwrap_or("/data/f").to_owned(),
            addr: config.get("addr").unwrap_or("127.0.0.1:9").to_owned(),
            lines: config.parse_or("lines", 1_000_000u64)?,
            records: config.parse_or("records", 200_000usize)?,
            headers: config.parse_or("headers", 0usize)?,
            poison: config
                .get("poison")
                .unwrap_or("")
                .split(',')
                .map(str::to_owned)
                .collect(),
            how: config.get("how").unwrap_or("error").to_owned(),
            passed: 0,
        })
    }

    fn process(&mut self, mut batch: Vec<Record>) -> Result<Vec<Record>> {
        if self.mode == "show-headers" {
            for r in &mut batch {
                for (k, v) in &r.headers {
                    r.value.push(b'|');
                    r.value.extend_from_slice(k.as_bytes());
                    r.value.push(b'=');
                    r.value.extend_from_slice(v);
                }
                r.value.retain(|b| *b != b'\n');
            }
            return Ok(batch);
        }
        if self.mode == "poison" {
            for r in &batch {
                let v = String::from_utf8_lossy(&r.value);
                if self.poison.iter().any(|p| *p == v) {
                    match self.how.as_str() {
                        "panic" => panic!("hostile: poisoned by {v}"),
                        "spin" => loop {
                            std::hint::black_box(&self.passed);
                        },
                        _ => bail!("hostile: poisoned by {v}"),
                    }
                }
                self.passed += 1;
            }
            return Ok(batch);
        }
        if self.acted && self.mode == "forge-panic" {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        if !self.acted {
            self.acted = true;
            let out = self.act()?;
            if !out.is_empty() {
                return Ok(out);
            }
        }
        Ok(batch)
    }
}
