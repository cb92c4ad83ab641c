//! `weir inspect PLUGIN.wasm`: what a component is: its kind, world, imports and exports.

use crate::plugin::{PluginHost, PluginOrigin};
use std::path::Path;
use std::process::ExitCode;

pub fn inspect(path: &Path) -> anyhow::Result<ExitCode> {
    let host = PluginHost::new()?;
    let origin = PluginOrigin::File(path.to_owned());
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read plugin {}: {e}", path.display()))?;
    let component = host.compile(&origin, &bytes)?;
    let d = host.describe(&component);
    println!("plugin:  {}", path.display());
    println!("size:    {} bytes", bytes.len());
    match (&d.kind, &d.world) {
        (Some(kind), Some(world)) => {
            println!("kind:    {kind}");
            println!("world:   {world}");
            let form = if d.packed {
                "packed (one buffer per batch)"
            } else {
                "list<record>"
            };
            println!("batches: {form}");
        }
        _ => println!("kind:    none (not a weir plugin)"),
    }
    println!("imports:");
    for i in &d.imports {
        println!("  {i}");
    }
    println!("exports:");
    for e in &d.exports {
        println!("  {e}");
    }
    Ok(if d.kind.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
