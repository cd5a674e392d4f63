//! Wheels that are not in a `--wheels` directory come from the package index, fetched by
//! `python -m pip download --only-binary=:all: --no-deps` (so private indexes, proxies,
//! certificates and credentials work as they do for pip), for the bundle's target Python.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::Refusal;

/// Index settings passed through to pip.
#[derive(Debug, Clone, Default)]
pub struct IndexOptions {
    pub index_url: Option<String>,
    pub extra_index_urls: Vec<String>,
}

impl IndexOptions {
    /// Append pip's index options to `command`.
    pub fn add_to(&self, command: &mut Command) {
        if let Some(url) = &self.index_url {
            command.args(["--index-url", url]);
        }
        for url in &self.extra_index_urls {
            command.args(["--extra-index-url", url]);
        }
    }
}

/// The interpreter the bundle is built for, as pip's download options say it.
#[derive(Debug, Clone, Default)]
pub struct PipTarget {
    /// `--python-version`, e.g. `3.11`.
    pub python_version: Option<String>,
    /// `--platform` tags, e.g. `manylinux_2_28_x86_64`.
    pub platforms: Vec<String>,
}

/// Download `requirements` (`name==version`) into `dest` with pip.
pub fn download(
    python: &Path,
    requirements: &[String],
    dest: &Path,
    index: &IndexOptions,
    target: &PipTarget,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut command = Command::new(python);
    command
        .args([
            "-m",
            "pip",
            "download",
            "--only-binary=:all:",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .arg("--dest")
        .arg(dest);
    if let Some(version) = &target.python_version {
        command.args(["--python-version", version]);
    }
    for platform in &target.platforms {
        command.args(["--platform", platform]);
    }
    index.add_to(&mut command);
    command.args(requirements).stdout(Stdio::null());
    if quiet {
        command.arg("--quiet");
    }
    log::debug!("{command:?}");
    let status = command.status().map_err(|err| {
        anyhow::anyhow!("cannot run `{} -m pip download`: {err}", python.display())
    })?;
    if !status.success() {
        return Err(Refusal::new(format!(
            "pip download could not fetch {} ({status})",
            requirements.join(" ")
        ))
        .with_hint("pass the wheels with --wheels DIR, or check --index-url/--extra-index-url")
        .into());
    }
    Ok(())
}
