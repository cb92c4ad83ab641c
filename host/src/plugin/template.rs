//! The instance template of a loaded plugin: the component pre-linked against the host and the
//! index of every export the host calls, resolved once when the plugin loads.
//!
//! Invariant: a template holds exactly the calls of its plugin's world (kind × batch form ×
//! contract), every one of them present; an instance made from it never looks an export up by
//! name, so starting (and recycling) an instance is instantiation plus `open`, nothing more.

use super::Contract;
use super::sandbox::HostState;
use crate::config::NodeKind;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre};

/// How batches cross the boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `list<record>`: the component model lifts every key, value and header.
    List,
    /// `packed-*` worlds: a batch is one `list<u8>` (see `weir-batch`).
    Packed,
}

/// A call the host makes into a plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

impl Call {
    pub const COUNT: usize = 12;
    pub const ALL: [Call; Call::COUNT] = [
        Call::Open,
        Call::Poll,
        Call::Process,
        Call::OnTimers,
        Call::OnWatermark,
        Call::Finish,
        Call::Write,
        Call::Prepare,
        Call::Commit,
        Call::Abort,
        Call::Snapshot,
        Call::Restore,
    ];

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
        }
    }

    /// The calls a plugin of `kind` built against `contract` exports.
    fn of(kind: NodeKind, contract: Contract) -> &'static [Call] {
        use Call::*;
        match (kind, contract) {
            (NodeKind::Source, _) => &[Open, Poll, Snapshot, Restore],
            (NodeKind::Operator, Contract::V1) => &[Open, Process, OnWatermark, Snapshot, Restore],
            (NodeKind::Operator, Contract::V2) => &[
                Open,
                Process,
                OnTimers,
                OnWatermark,
                Finish,
                Snapshot,
                Restore,
            ],
            (NodeKind::Sink, _) => &[
                Open, Write, Finish, Prepare, Commit, Abort, Snapshot, Restore,
            ],
        }
    }
}

/// What every instance of one plugin is made from.
pub struct Template {
    /// Linked against the host: every import resolved and type-checked.
    pub pre: InstancePre<HostState>,
    pub form: Form,
    pub contract: Contract,
    exports: [Option<ComponentExportIndex>; Call::COUNT],
}

impl Template {
    /// Resolve the calls of the world `component` was found to export. Errors name the missing
    /// export.
    pub fn new(
        pre: InstancePre<HostState>,
        component: &Component,
        kind: NodeKind,
        form: Form,
        contract: Contract,
    ) -> Result<Self, String> {
        let package = super::WIT_PACKAGE;
        let version = contract.version();
        let prefix = if form == Form::Packed { "packed-" } else { "" };
        let interface = |name: &str| {
            let full = format!("{package}/{name}@{version}");
            component
                .get_export_index(None, full.as_str())
                .ok_or_else(|| format!("it does not export `{full}`"))
        };
        let calls = interface(&format!("{prefix}{kind}"))?;
        let state = interface("state")?;
        let mut exports = [None; Call::COUNT];
        for &call in Call::of(kind, contract) {
            let within = match call {
                Call::Snapshot | Call::Restore => &state,
                _ => &calls,
            };
            let index = component
                .get_export_index(Some(within), call.name())
                .ok_or_else(|| {
                    format!(
                        "its `{package}/{prefix}{kind}@{version}` export has no `{}` function",
                        call.name()
                    )
                })?;
            exports[call as usize] = Some(index);
        }
        Ok(Template {
            pre,
            form,
            contract,
            exports,
        })
    }

    /// The export of `call`, if this world has it.
    pub fn export(&self, call: Call) -> Option<&ComponentExportIndex> {
        self.exports[call as usize].as_ref()
    }
}
