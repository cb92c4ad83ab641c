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

pub use weir_core::Call;

/// Every call a plugin may export, in the order of the export tables.
pub const EXPORTED: [Call; Call::EXPORTS] = [
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

/// The calls a plugin of `kind` built against `contract` exports.
fn exports_of(kind: NodeKind, contract: Contract) -> &'static [Call] {
    use Call::*;
    match (kind, contract) {
        (NodeKind::Source, _) => &[Open, Poll, Snapshot, Restore],
        (NodeKind::Operator, Contract::V1) => &[Open, Process, OnWatermark, Snapshot, Restore],
        (NodeKind::Operator, Contract::V2 | Contract::V3) => &[
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

/// What every instance of one plugin is made from.
pub struct Template {
    /// Linked against the host: every import resolved and type-checked.
    pub pre: InstancePre<HostState>,
    pub form: Form,
    pub contract: Contract,
    exports: [Option<ComponentExportIndex>; Call::EXPORTS],
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
        let mut exports = [None; Call::EXPORTS];
        for &call in exports_of(kind, contract) {
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
