//! Why a node failed, in one type the runtime understands without knowing what the node is (a
//! Wasm plugin, a native connector): which node and call, the cause, whose failure it is
//! ([`Domain`]) and whether a restart can cure it ([`Retry`]).
//!
//! Invariant: every failure the runtime restarts or stops on is classified here, by the call
//! and the cause, never by matching message text.

use std::time::Duration;

/// A call of the node contract (the WIT's exports), and instantiation before them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Open,
    Poll,
    Process,
    OnTimers,
    OnWatermark,
    Finish,
    Write,
    Prepare,
    Commit,
    Abort,
    Snapshot,
    Restore,
    /// Making the instance, before `open`.
    Instantiate,
}

impl Call {
    /// How many calls a plugin exports (every variant but `Instantiate`).
    pub const EXPORTS: usize = 12;

    /// Its name in the WIT, as errors and exports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Call::Open => "open",
            Call::Poll => "poll",
            Call::Process => "process",
            Call::OnTimers => "on-timers",
            Call::OnWatermark => "on-watermark",
            Call::Finish => "finish",
            Call::Write => "write",
            Call::Prepare => "prepare",
            Call::Commit => "commit",
            Call::Abort => "abort",
            Call::Snapshot => "snapshot",
            Call::Restore => "restore",
            Call::Instantiate => "instantiate",
        }
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a call into a node failed.
#[derive(Debug)]
pub enum Cause {
    /// The node returned an error.
    Error(String),
    /// The node returned an error the operating system gave it: a file, directory or socket
    /// under its grants it could not use (missing, no permission, disk full).
    Io(String),
    /// The plugin panicked (message from its panic hook; the WebAssembly backtrace of the trap
    /// the panic ended in, for dead letters, not for the one-line message).
    Panic {
        message: String,
        backtrace: Box<str>,
    },
    /// The plugin asked for more memory than its ceiling.
    OutOfMemory { requested: u64, ceiling: u64 },
    /// One call ran longer than the time budget.
    Timeout(Duration),
    /// Any other trap.
    Trap(String),
    /// A packed batch from the plugin did not decode.
    BadBatch(String),
    /// The reply was larger than the node's reply limits allow.
    TooLarge(String),
    /// The plugin used keyed state in a way the host refuses whatever the moment (a key of
    /// another subtask, a state name too long, keyed state outside an operator).
    KeyedMisuse(String),
    /// The plugin held more WASI handles than its limit.
    TooManyHandles(usize),
    /// The job was cancelled while the call ran (another subtask failed, or a stop ran out of
    /// time): not this node's fault.
    Cancelled,
}

impl Cause {
    /// The WebAssembly backtrace of the trap that ended the call, where there is one (a trap's
    /// message carries it too).
    pub fn backtrace(&self) -> Option<&str> {
        match self {
            Cause::Panic { backtrace, .. } if !backtrace.is_empty() => Some(backtrace),
            Cause::Trap(message) => message.find("wasm backtrace:").map(|at| &message[at..]),
            _ => None,
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MIB: u64 = 1 << 20;
        match self {
            Cause::Error(m) | Cause::Io(m) => write!(f, "failed: {m}"),
            Cause::Panic { message, .. } => write!(f, "panicked: {message}"),
            Cause::OutOfMemory { requested, ceiling } => write!(
                f,
                "ran out of memory: it asked for {} MiB (all its memories and tables together) but its ceiling is {} MiB (raise `memory` on the node if it really needs more)",
                requested.div_ceil(MIB),
                ceiling / MIB
            ),
            Cause::Timeout(budget) => write!(
                f,
                "timed out: one call ran longer than its time budget of {budget:?}, computing or blocked in a host call (an endless loop or a sleep? raise `time_budget` on the node if the work is real)"
            ),
            Cause::Trap(m) => write!(f, "trapped: {m}"),
            Cause::BadBatch(m) => write!(
                f,
                "returned a packed batch that does not decode ({m}); it must follow weir:plugin/packed-types (rebuild it against this weir's SDK)"
            ),
            Cause::TooLarge(m) => write!(
                f,
                "returned too much in one call: {m} (raise the node's `max_reply_records`, `max_reply_bytes` or `max_reply_headers` if the output is real)"
            ),
            Cause::TooManyHandles(limit) => write!(
                f,
                "held more than {limit} open handles (files, directories, sockets, streams) at once (raise `max_handles` on the node if it really needs more)"
            ),
            Cause::KeyedMisuse(m) => write!(f, "failed: {m}"),
            Cause::Cancelled => write!(f, "was stopped because the job was cancelled"),
        }
    }
}

/// Whose failure it is: where the user should look first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// The pipeline: a config value, a limit, a plugin that does not load.
    User,
    /// The plugin's own code: an error it returned, a panic, a trap.
    Plugin,
    /// A system outside weir: a file under the grants, a broker.
    External,
    /// weir itself (or a cancellation weir made).
    Weir,
}

/// Whether restarting the job can cure a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// It may pass: restart from the latest checkpoint.
    Restart,
    /// The same code, config and input fail the same way every time; the reason, in words.
    Never(&'static str),
}

/// A node's failure.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A call into a running node failed.
    #[error("node `{node}`[{subtask}] ({origin}) {cause} (in `{call}`)")]
    Call {
        node: String,
        subtask: u32,
        /// What runs the node: a plugin's file or built-in name, a connector's name.
        origin: String,
        call: Call,
        cause: Cause,
    },
    /// The node could not be made: its plugin does not load or start (the message says which
    /// node and why).
    #[error("{message}")]
    Start { message: String, domain: Domain },
    /// A native connector's external system failed (a broker, say).
    #[error("node `{node}`[{subtask}] ({connector}) failed: {message}")]
    External {
        node: String,
        subtask: u32,
        connector: &'static str,
        message: String,
    },
}

impl NodeError {
    /// Whose failure it is.
    pub fn domain(&self) -> Domain {
        match self {
            NodeError::Call { call, cause, .. } => match cause {
                Cause::Io(_) => Domain::External,
                Cause::Cancelled => Domain::Weir,
                Cause::Error(_) if matches!(call, Call::Open | Call::Instantiate) => Domain::User,
                Cause::OutOfMemory { .. }
                | Cause::Timeout(_)
                | Cause::TooLarge(_)
                | Cause::TooManyHandles(_) => Domain::User,
                _ => Domain::Plugin,
            },
            NodeError::Start { domain, .. } => *domain,
            NodeError::External { .. } => Domain::External,
        }
    }

    /// Whether a restart can cure it, and if not, why.
    pub fn retry(&self) -> Retry {
        let NodeError::Call { call, cause, .. } = self else {
            return match self.domain() {
                Domain::User => Retry::Never("the plugin cannot be loaded or started"),
                _ => Retry::Restart,
            };
        };
        Retry::Never(match (call, cause) {
            (
                Call::Open | Call::Instantiate,
                Cause::Error(_) | Cause::Io(_) | Cause::OutOfMemory { .. } | Cause::TooLarge(_),
            ) => "the plugin refuses to start with this config or ceiling",
            (Call::Restore, Cause::Error(_)) => {
                "the plugin refuses the stored state, which every restart restores again (run the build that wrote it, or start over with --fresh)"
            }
            (Call::Restore, Cause::Io(_)) => {
                "the plugin cannot use a file or directory its stored state names, and a restart finds it the same way (were files under its grants moved, deleted or made read-only outside weir? put them back, or start over with --fresh --yes)"
            }
            (_, Cause::TooLarge(_)) => {
                "the same input makes the same reply again (raise the node's reply limit the message names, or lower [pipeline] batch_size)"
            }
            (_, Cause::KeyedMisuse(_)) => {
                "the plugin's code uses keyed state this way on the same input again"
            }
            (_, Cause::BadBatch(_)) => "the plugin does not speak this weir's batch format",
            _ => return Retry::Restart,
        })
    }

    /// Whether it is a failure of the plugin's own logic (an error it returned that is not the
    /// operating system's, a panic, a trap): the same input makes it again. Not a limit the
    /// host enforced, not I/O, not a cancellation.
    pub fn is_plugin_logic(&self) -> bool {
        matches!(
            self,
            NodeError::Call {
                cause: Cause::Error(_) | Cause::Panic { .. } | Cause::Trap(_),
                ..
            }
        )
    }

    /// Whether the call was cut short by the job's cancellation.
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            NodeError::Call {
                cause: Cause::Cancelled,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(call: Call, cause: Cause) -> NodeError {
        NodeError::Call {
            node: "op".into(),
            subtask: 1,
            origin: "op.wasm".into(),
            call,
            cause,
        }
    }

    #[test]
    fn the_message_names_node_subtask_origin_and_call() {
        let e = call(Call::OnTimers, Cause::Error("boom".into()));
        assert_eq!(
            e.to_string(),
            "node `op`[1] (op.wasm) failed: boom (in `on-timers`)"
        );
    }

    #[test]
    fn what_repeats_on_every_restart_is_never_retried() {
        let never = |e: NodeError| matches!(e.retry(), Retry::Never(_));
        assert!(never(call(Call::Open, Cause::Error("bad key".into()))));
        assert!(never(call(
            Call::Instantiate,
            Cause::OutOfMemory {
                requested: 2,
                ceiling: 1
            }
        )));
        assert!(never(call(Call::Restore, Cause::Io("gone".into()))));
        assert!(never(call(Call::Poll, Cause::TooLarge("big".into()))));
        assert!(never(call(Call::Process, Cause::KeyedMisuse("k".into()))));
        assert!(never(call(Call::Process, Cause::BadBatch("x".into()))));
        assert!(never(NodeError::Start {
            message: "no such file".into(),
            domain: Domain::User
        }));
        for e in [
            call(Call::Process, Cause::Error("boom".into())),
            call(Call::Process, Cause::Io("disk".into())),
            call(Call::Write, Cause::Timeout(Duration::from_secs(1))),
            call(Call::Process, Cause::Cancelled),
            NodeError::External {
                node: "k".into(),
                subtask: 0,
                connector: "kafka",
                message: "broker down".into(),
            },
        ] {
            assert_eq!(e.retry(), Retry::Restart, "{e}");
        }
    }

    #[test]
    fn each_failure_has_its_domain() {
        assert_eq!(
            call(Call::Open, Cause::Error("x".into())).domain(),
            Domain::User
        );
        assert_eq!(
            call(Call::Process, Cause::Error("x".into())).domain(),
            Domain::Plugin
        );
        assert_eq!(
            call(Call::Process, Cause::Io("x".into())).domain(),
            Domain::External
        );
        assert_eq!(call(Call::Process, Cause::Cancelled).domain(), Domain::Weir);
        assert!(call(Call::Process, Cause::Trap("x".into())).is_plugin_logic());
        assert!(!call(Call::Process, Cause::Io("x".into())).is_plugin_logic());
    }
}
