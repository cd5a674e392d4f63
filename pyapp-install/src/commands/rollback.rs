//! `pyapp-install rollback APP`; `--json` prints what it did.

use anyhow::Result;

use crate::engine::rollback::{self, RollbackRequest};
use crate::engine::Target;
use crate::output::Output;

pub fn run(request: &RollbackRequest, target: &Target, output: &Output) -> Result<()> {
    let report = rollback::rollback(request, target)?;
    output.report(&report)
}
