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

/// What pip fetches for the requirements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Their wheels only (pins, whose closure is pinned too), for the target.
    Wheels,
    /// Their wheels and those of their dependencies, resolved by pip.
    WheelsWithDependencies,
    /// Their source distributions only (pins without a wheel, given as `name==version`).
    Sdists,
}

/// Download `requirements` into `dest` with pip.
pub fn download(
    python: &Path,
    requirements: &[String],
    dest: &Path,
    index: &IndexOptions,
    target: &PipTarget,
    fetch: Fetch,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut command = Command::new(python);
    command
        .args(["-m", "pip", "download", "--disable-pip-version-check"])
        .arg(if fetch == Fetch::Sdists {
            // Only for these names: `:all:` would reach the build environment pip makes to
            // prepare the sdists' metadata, and refuse their backends' wheels.
            let names: Vec<&str> = requirements
                .iter()
                .map(|r| r.split("==").next().unwrap_or(r))
                .collect();
            format!("--no-binary={}", names.join(","))
        } else {
            "--only-binary=:all:".to_string()
        })
        .arg("--dest")
        .arg(dest);
    if fetch != Fetch::WheelsWithDependencies {
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
