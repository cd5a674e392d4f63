//! `pyapp-install gc`: collects the store; `--json` prints what was (or would be) freed.

use anyhow::Result;

use crate::engine::gc::{self, GcRequest};
use crate::engine::Target;
use crate::output::Output;

pub fn run(request: &GcRequest, target: &Target, output: &Output) -> Result<()> {
    let report = gc::gc(request, target)?;
    output.report(&report)
}
