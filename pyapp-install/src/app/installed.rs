//! An installed release as it is run: the `metadata.yaml` and `configuration.yaml` it kept
//! from its bundle (FORMAT.md 6) and the interpreter its venv was built on.

use std::path::PathBuf;

use anyhow::Result;
use pyapp_bundle::config_spec::ConfigSpec;
use pyapp_bundle::layout::{CONFIGURATION_NAME, METADATA_NAME};
use pyapp_bundle::metadata::Metadata;

use crate::app::receipt::Receipt;
use crate::app::release;
use crate::app::tree::{AppTree, AppsDir};
use pyapp_cli::Refusal;

/// A release as it is run: what its bundle declared and the interpreter it was built on.
#[derive(Debug, Clone)]
pub struct ReleaseInfo {
    /// The name under `releases/`.
    pub release: String,
    pub metadata: Metadata,
    pub spec: ConfigSpec,
    /// The base interpreter of its venv (the receipt's `python`).
    pub python: PathBuf,
}

impl ReleaseInfo {
    /// The release `release` of `tree`, from the `metadata.yaml` and `configuration.yaml`
    /// it kept, built on `python`.
    pub fn load(tree: &AppTree, release: &str, python: &str) -> Result<ReleaseInfo> {
        let dir = tree.release_dir(release);
        let read = |name: &str| -> Result<(String, String)> {
            let path = dir.join(name);
            let bytes = pyapp_fs::read_optional(&path)?.ok_or_else(|| {
                Refusal::new(format!("`{}` is missing", path.display()))
                    .with_hint("install the release's bundle again")
            })?;
            let text = String::from_utf8(bytes)
                .map_err(|_| Refusal::new(format!("`{}` is not UTF-8", path.display())))?;
            Ok((path.display().to_string(), text))
        };
        let (label, text) = read(METADATA_NAME)?;
        let metadata =
            Metadata::parse(&text, &label).map_err(|err| Refusal::new(err.to_string()))?;
        let (label, text) = read(CONFIGURATION_NAME)?;
        let spec = ConfigSpec::parse(&text, &label).map_err(|err| Refusal::new(err.to_string()))?;
        Ok(ReleaseInfo {
            release: release.to_string(),
            metadata,
            spec,
            python: PathBuf::from(python),
        })
    }

    /// The release `release` of `tree`, built with the interpreter `receipt` records.
    pub fn of_receipt(tree: &AppTree, receipt: &Receipt, release: &str) -> Result<ReleaseInfo> {
        ReleaseInfo::load(tree, release, receipt.python_of(release))
    }

    pub fn version(&self) -> String {
        self.metadata.version.to_string()
    }
}

/// An installed app as the read-only operations (`status`, `logs`) see it: its tree, its
/// receipt, and the release `current` points at (the receipt's when the link is missing).
pub struct InstalledApp {
    pub tree: AppTree,
    pub receipt: Receipt,
    pub current: ReleaseInfo,
}

impl InstalledApp {
    /// The app `app` of `apps`; refused when pyapp-install has not installed it there.
    pub fn load(apps: &AppsDir, app: &str) -> Result<InstalledApp> {
        let tree = apps.app(app)?;
        let receipt = Receipt::load(&tree.receipt_path())?.ok_or_else(|| {
            Refusal::new(format!(
                "{app} is not installed in {}",
                apps.path().display()
            ))
            .with_hint("`pyapp-install list` shows the installed apps")
        })?;
        let release = release::current_release(&tree)?.unwrap_or_else(|| receipt.release.clone());
        let current = ReleaseInfo::of_receipt(&tree, &receipt, &release)?;
        Ok(InstalledApp {
            tree,
            receipt,
            current,
        })
    }
}
