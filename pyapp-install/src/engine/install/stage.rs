//! Step 2: the app's directories and the release built in a staging directory, made
//! durable and renamed into `releases/`.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pyapp_bundle::layout::{CONFIGURATION_NAME, DEPS_PREFIX, METADATA_NAME, SRC_PREFIX};
use pyapp_bundle::metadata::{DependencyMode, Isolation, Metadata};
use pyapp_bundle::reader::Bundle;
use pyapp_cli::StepLog;

use super::verify::PendingCheck;
use crate::app::receipt::ReleaseRecord;
use crate::app::release::Staging;
use crate::app::tree::{AppTree, AppsDir, LASTING_DIRS};
use crate::engine::{gc, Target};
use pyapp_cli::Refusal;
use pyapp_fs::fault;
use pyapp_venv::interpreter::Interpreter;
use pyapp_venv::store::{KnownIndexes, Store};
use pyapp_venv::venv::Venv;
use pyapp_venv::wheel_install::{
    self, InstallOptions, Placement, WheelInput, WheelInstallError, WheelProblem,
};

/// The mode of the writable directories created under data/.
const WRITABLE_DIR_MODE: u32 = 0o750;

/// Creates `APPS/`, `APPS/APP/` and `APPS/APP/.pyapp/` when missing; returns the
/// outermost of them that did not exist, for [`NewAppDir`].
pub fn create_app_dirs(apps: &AppsDir, tree: &AppTree) -> Result<Option<PathBuf>> {
    let mut missing = None;
    for dir in tree
        .dir()
        .ancestors()
        .filter(|dir| !dir.as_os_str().is_empty())
    {
        if pyapp_fs::exists(dir)? {
            break;
        }
        missing = Some(dir.to_owned());
    }
    if !pyapp_fs::is_real_dir(apps.path())? {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(apps.path())
            .with_context(|| format!("failed to create `{}`", apps.path().display()))?;
    }
    pyapp_fs::ensure_dir(tree.dir(), 0o755)?;
    pyapp_fs::ensure_dir(&tree.state_dir(), 0o755)?;
    Ok(missing)
}

/// The directory a first install created ([`create_app_dirs`]), removed again when the
/// install fails (dropped without [`NewAppDir::keep`]): a refused first install leaves
/// the root as it found it. Made only once the app's lock is held, so that it never
/// removes what another install is building.
pub struct NewAppDir(Option<PathBuf>);

impl NewAppDir {
    /// Guards `missing`, the result of [`create_app_dirs`].
    pub fn after_lock(missing: Option<PathBuf>) -> NewAppDir {
        NewAppDir(missing)
    }

    /// The install succeeded (or changed nothing): the directory stays.
    pub fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for NewAppDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = pyapp_fs::remove_dir_all_if_exists(&dir);
        }
    }
}

/// config/, data/, tmp/, run/, log/ and the writable directories the metadata asks for
/// under data/, with their modes: created when missing, left alone when present, refused
/// when a link.
pub fn lasting_dirs(tree: &AppTree, metadata: &Metadata) -> Vec<(PathBuf, u32)> {
    let data = tree.lasting_dir("data");
    let mut dirs: Vec<(PathBuf, u32)> = LASTING_DIRS
        .iter()
        .map(|(name, mode)| (tree.lasting_dir(name), *mode))
        .collect();
    dirs.extend(
        metadata
            .resources
            .writable_dirs
            .iter()
            .map(|dir| (data.join(dir.as_str()), WRITABLE_DIR_MODE)),
    );
    dirs
}

/// Builds the release `release` of `tree` unless it is on disk already, the shared wheels
/// through `store` (with the indexes of its entries read already); returns whether it was
/// built now. Either way `pending`, the check of the wheels the store holds, has
/// passed by the time it returns Ok: a built release is renamed into place only after it.
/// A failed build leaves no staging directory and collects the store entries it alone
/// published.
#[allow(clippy::too_many_arguments)]
pub fn build(
    bundle: &mut Bundle,
    metadata: &Metadata,
    interpreter: &Interpreter,
    tree: &AppTree,
    release: &str,
    options: &InstallOptions,
    record: &ReleaseRecord,
    store: Option<(&Store, KnownIndexes)>,
    pending: PendingCheck,
    target: &Target,
) -> Result<bool> {
    if pyapp_fs::is_real_dir(&tree.release_dir(release))? {
        pending.finish()?;
        return Ok(false);
    }
    let staging = Staging::create(tree, release)?;
    let runtime_dir = tree.runtime_release_dir(release);
    let staged = fill(
        bundle,
        metadata,
        interpreter,
        &staging,
        &runtime_dir,
        options,
        store,
        target,
    )
    .and_then(|()| pending.finish());
    if let Err(err) = staged {
        // Store entries this run published may have no other user.
        drop(staging);
        gc::collect_after(&target.apps, target.progress());
        return Err(err);
    }
    staging.save_record(record)?;
    fault::point("staged");
    staging.finish()?;
    fault::point("after-staging");
    Ok(true)
}

/// Fills the staging directory: `src/` from the bundle, then `venv/` with every wheel,
/// read in place from the bundle; the shared ones through `store`.
#[allow(clippy::too_many_arguments)]
fn fill(
    bundle: &mut Bundle,
    metadata: &Metadata,
    interpreter: &Interpreter,
    staging: &Staging,
    runtime_dir: &Path,
    options: &InstallOptions,
    store: Option<(&Store, KnownIndexes)>,
    target: &Target,
) -> Result<()> {
    let progress = target.progress();
    let mut sources: Vec<String> = bundle
        .entries()
        .iter()
        .filter(|entry| entry.name.starts_with(SRC_PREFIX))
        .map(|entry| entry.name.clone())
        .collect();
    sources.extend([METADATA_NAME.to_string(), CONFIGURATION_NAME.to_string()]);
    let mut steps = StepLog::new();
    steps.begin(format!("extract {} source files", sources.len()));
    let bar = progress.task("extracting", sources.len() as u64);
    let to_sync = staging.to_sync();
    for name in &sources {
        let path = bundle.extract_entry_to_path(name, staging.dir())?;
        if let Some(dir) = path.parent() {
            to_sync.dirs_from(staging.dir(), dir);
        }
        to_sync.file_at(&path);
        bar.advance(1);
    }
    bar.finish();
    fault::point("extracted");

    steps.begin("create the venv");
    let system_modules: Vec<String> = metadata
        .system
        .python_modules
        .iter()
        .map(|module| module.to_string())
        .collect();
    let venv = Venv::create_staged(
        &staging.final_path().join("venv"),
        &runtime_dir.join("venv"),
        interpreter,
        &system_modules,
        to_sync,
    )?;
    let shared: HashMap<&str, DependencyMode> = metadata
        .dependencies
        .iter()
        .map(|dependency| (dependency.wheel.as_str(), dependency.mode))
        .collect();
    // A chroot sees the release, not the store: its venv holds every file itself.
    let link_dirs = metadata.isolation == Isolation::None;
    let mut wheels = Vec::new();
    for entry in bundle.entries() {
        let Some(file_name) = entry.name.strip_prefix(DEPS_PREFIX) else {
            continue;
        };
        let placement = match shared.get(file_name) {
            Some(DependencyMode::Shared) => Placement::Shared {
                sha256: hex::encode(entry.sha256),
                link_dirs: link_dirs && file_name != metadata.app_wheel,
                blocks_digest: bundle.blocks_digest(&entry.name),
            },
            _ => Placement::Local,
        };
        wheels.push(WheelInput {
            file_name: file_name.to_owned(),
            bytes: bundle.stored_entry(&entry.name)?,
            placement,
        });
    }
    steps.begin(format!("install {} wheels", wheels.len()));
    let session = store
        .map(|(store, known)| {
            store
                .open_for_install()
                .map(|session| session.knowing(known))
        })
        .transpose()?;
    let bar = progress.task("installing", wheels.len() as u64);
    let installed =
        wheel_install::install_from(&venv, wheels, session.as_ref(), options, to_sync, &|| {
            bar.advance(1)
        });
    bar.finish();
    let installed = installed.map_err(wheel_error)?;
    steps.end();
    for note in installed.notes {
        progress.note(&note);
    }
    for warning in installed.warnings {
        progress.warning(&warning);
    }
    Ok(())
}

/// A wheel that cannot be installed is the bundle's fault (exit 1), unless this machine
/// failed to read or write a file.
pub fn wheel_error(err: WheelInstallError) -> anyhow::Error {
    match &err {
        WheelInstallError::Compile { python, source }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            anyhow::Error::new(
                Refusal::new(format!(
                    "the bytecode compiler runs as nobody, who cannot run `{}`: {source}",
                    python.display()
                ))
                .with_hint(
                    "the interpreter must be usable by every user (the app user too); \
                     a Python under a private home (pyenv in /root) is not: install with --python /usr/bin/python3.X",
                ),
            )
        }
        WheelInstallError::Wheel {
            problem: WheelProblem::Open { .. } | WheelProblem::Write { .. },
            ..
        }
        | WheelInstallError::Compile { .. }
        | WheelInstallError::Compiler { .. }
        | WheelInstallError::Bytecode { .. }
        | WheelInstallError::Directory { .. }
        | WheelInstallError::Store(_) => anyhow::Error::new(err),
        WheelInstallError::Incompatible { .. } => anyhow::Error::new(
            Refusal::new(format!("refusing the bundle: {err}")).with_hint(
                "build the bundle for this server: pyapp-build --python-version X.Y --platform TAG",
            ),
        ),
        _ => anyhow::Error::new(
            Refusal::new(format!("refusing the bundle: {err}"))
                .with_hint("rebuild the bundle with pyapp-build from good wheels"),
        ),
    }
}
