//! The job's HTTP server (`weir run --http ADDR`, or `[http] listen`): a JSON API of the running
//! job (graph, status, metrics per node and subtask, checkpoints, restarts, watermarks, keyed
//! state queries), `GET /metrics` in the Prometheus text format, the dashboard page, and control
//! endpoints (checkpoint, savepoint, stop, cancel).
//!
//! Invariant: the server listens beyond the loopback interface only with a token, and every
//! control endpoint checks the token when there is one; serving reads never blocks the job (see
//! [`crate::live`]).

mod api;
mod prometheus;
mod rates;

use crate::keyed::live::Registry;
use crate::live::Live;
use crate::runtime::Command;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The environment variable that holds the API token.
pub const TOKEN_ENV: &str = "WEIR_HTTP_TOKEN";

/// Where the server listens and the token its control endpoints want.
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub token: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to serve the HTTP API on {0} without a token: anyone who reaches that address could stop the job or read its state. Set {TOKEN_ENV} (or [http] token_file), or listen on 127.0.0.1"
    )]
    NoToken(SocketAddr),
    #[error("cannot read the HTTP API token file {path}: {error}")]
    TokenFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "the HTTP API token ({0}) is empty or shorter than 16 characters: use a long random one (e.g. `openssl rand -hex 32`)"
    )]
    WeakToken(String),
    #[error("cannot listen on {addr} for the HTTP API: {error} (is another job using that port?)")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

impl Settings {
    /// Listen on `listen`; the token comes from `$WEIR_HTTP_TOKEN`, else from `token_file`.
    /// Beyond the loopback interface a token is required.
    pub fn resolve(listen: SocketAddr, token_file: Option<&Path>) -> Result<Self, HttpError> {
        let token = match std::env::var(TOKEN_ENV).ok() {
            Some(t) => Some((t, format!("${TOKEN_ENV}"))),
            None => match token_file {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|error| HttpError::TokenFile {
                            path: path.to_owned(),
                            error,
                        })?;
                    Some((text.trim().to_owned(), path.display().to_string()))
                }
                None => None,
            },
        };
        if let Some((t, from)) = &token
            && t.trim().len() < 16
        {
            return Err(HttpError::WeakToken(from.clone()));
        }
        let token = token.map(|(t, _)| t.trim().to_owned());
        if token.is_none() && !listen.ip().is_loopback() {
            return Err(HttpError::NoToken(listen));
        }
        Ok(Settings { listen, token })
    }
}

/// What the handlers reach of the job.
pub struct Control {
    pub live: Arc<Live>,
    /// Checkpoint, savepoint and cancel requests to the running attempt.
    pub commands: tokio::sync::mpsc::UnboundedSender<Command>,
    /// Stop with a savepoint (the same as SIGTERM; a swap's stop sets only this).
    pub stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// Set with `stop` when a person asked to stop: the job then ends, even during a swap.
    pub stop_asked: Arc<std::sync::atomic::AtomicBool>,
    /// The running subtasks' keyed state, for queries.
    pub keyed: Option<Registry>,
    /// Checks a new build for a node (`None`: swaps need checkpoints, which are off).
    pub swap: Option<PrepareSwap>,
}

/// Saves, loads and tries a new build for node `uid`: the build ready to swap in, or why it will
/// not do.
pub type PrepareSwap =
    Arc<dyn Fn(&str, &[u8]) -> Result<crate::swap::Prepared, String> + Send + Sync>;
/// The shared state of every handler.
struct App {
    control: Control,
    /// SHA-256 of the token: compared digest to digest, so the comparison's time tells nothing
    /// about the token.
    token: Option<[u8; 32]>,
    rates: Arc<rates::Rates>,
}

impl App {
    /// Whether `presented` (an `Authorization` header) carries the token, if one is required.
    fn authorized(&self, presented: Option<&str>) -> bool {
        let Some(want) = &self.token else {
            return true;
        };
        let Some(given) = presented.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let got: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        got == *want
    }
}

/// A running server; dropped, it lets the responses in flight (a stop's reply among them) go
/// out, then stops listening (connections still open after a moment are dropped).
pub struct Server {
    rt: tokio::runtime::Handle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Bind `settings.listen` and serve on `rt`. The address bound (a port of 0 picks one) is
    /// logged as `http: serving on http://ADDR`.
    pub fn start(
        rt: &tokio::runtime::Handle,
        settings: &Settings,
        control: Control,
    ) -> Result<Server, HttpError> {
        let bind_error = |error| HttpError::Bind {
            addr: settings.listen,
            error,
        };
        let std_listener = std::net::TcpListener::bind(settings.listen).map_err(bind_error)?;
        std_listener.set_nonblocking(true).map_err(bind_error)?;
        let addr = std_listener.local_addr().map_err(bind_error)?;
        let rates = Arc::new(rates::Rates::default());
        let sampler = rt.spawn(rates::sample(control.live.clone(), rates.clone()));
        let app = Arc::new(App {
            control,
            token: settings
                .token
                .as_ref()
                .map(|t| Sha256::digest(t.as_bytes()).into()),
            rates,
        });
        let router = api::router(app);
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let listener = {
            let _rt = rt.enter();
            tokio::net::TcpListener::from_std(std_listener).map_err(bind_error)?
        };
        let task = rt.spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!("the HTTP API stopped: {e}");
            }
        });
        tracing::info!("http: serving on http://{addr}");
        Ok(Server {
            rt: rt.clone(),
            shutdown: Some(shutdown),
            task,
            sampler,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        self.sampler.abort();
        let task = &mut self.task;
        self.rt.block_on(async {
            if tokio::time::timeout(Duration::from_secs(2), &mut *task)
                .await
                .is_err()
            {
                task.abort();
            }
        });
    }
}
