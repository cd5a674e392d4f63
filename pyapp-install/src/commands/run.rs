//! `pyapp-install run APP SERVICE`: becomes the service's process.

use anyhow::Result;

use crate::engine::run::{self, RunRequest};
use crate::engine::Target;

pub fn run(request: &RunRequest, target: &Target) -> Result<()> {
    run::run(request, target)
}
