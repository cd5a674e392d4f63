//! Wheels that are not in a `--wheels` directory come from the package index, fetched by
//! `python -m pip download --only-binary=:all:` (so private indexes, proxies, certificates
//! and credentials work as they do for pip): pins with `--no-deps` for the bundle's target
//! Python, build requirements with their dependencies for the interpreter that builds.

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

/// Whether pip also downloads what the requirements depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependencies {
    /// Only the requirements (pins, whose closure is pinned too).
    None,
    /// The requirements and their dependencies, resolved by pip.
    Resolved,
}

/// Download `requirements` into `dest` with pip.
pub fn download(
    python: &Path,
    requirements: &[String],
    dest: &Path,
    index: &IndexOptions,
    target: &PipTarget,
    dependencies: Dependencies,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut command = Command::new(python);
    command
        .args([
            "-m",
            "pip",
            "download",
            "--only-binary=:all:",
            "--disable-pip-version-check",
        ])
        .arg("--dest")
        .arg(dest);
    if dependencies == Dependencies::None {
        command.arg("--no-deps");
    }
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
