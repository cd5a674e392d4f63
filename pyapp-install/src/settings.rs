//! From the command line to the engine: clap's arguments (`cli`) become the [`Target`] and
//! the typed requests the operations take, so that nothing below `commands` sees a clap
//! type (the way ripgrep turns its low-level arguments into `HiArgs`).

use std::sync::Arc;

use crate::app::ports::PortRange;
use crate::cli::CommonArgs;
use crate::engine::Target;
use crate::output::Output;

/// The target of every action: `--root`, `--apps-dir`, the port range, and `output` for
/// messages and progress.
pub fn target(common: &CommonArgs, port_range: PortRange, output: Output) -> Target {
    Target::new(
        common.root.clone(),
        &common.apps_dir,
        port_range,
        Arc::new(output),
    )
}
