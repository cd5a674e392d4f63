//! `pyapp-install remove APP [--purge]`; `--json` prints what it did.

use anyhow::Result;

use crate::engine::remove::{self, RemoveRequest};
use crate::engine::Target;
use crate::output::Output;

pub fn run(request: &RemoveRequest, target: &Target, output: &Output) -> Result<()> {
    let report = remove::remove(request, target)?;
    output.report(&report)
}
