//! Installing a bundle, step by step: recognise it (the file installed before, unchanged,
//! or a bundle with the same sha256, already current, is a no-op), verify it, find the
//! interpreter, take the app's lock, prepare the lasting directories, stage the release
//! (source tree, venv, wheels read in place from the bundle, the shared ones through the
//! store), make it durable, rename it into place, switch `current`, write the receipt,
//! prune old releases and the store entries they alone used. Nothing is written before the
//! bundle and the interpreter have passed every check; a failure after that leaves
//! `current` where it was and removes the staged release.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pyapp_bundle::config_spec::ConfigSpec;
use pyapp_bundle::metadata::{DependencyMode, Metadata};
use pyapp_bundle::reader::{Bundle, BundleError, ErrorKind, Limits};
use pyapp_bundle::yaml::MAX_YAML_BYTES;
use pyapp_cli::StepLog;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::app::config_file::{ConfigFile, GivenValues};
use crate::app::policy::{self, Step};
use crate::app::receipt::{now_rfc3339, BundleFile, Receipt, ReleaseRecord};
use crate::app::release::{self, Staging};
use crate::app::tree::{AppTree, AppsDir, LASTING_DIRS};
use crate::app::trust::TrustPolicy;
use crate::cli::InstallArgs;
use crate::engine::activation::{Activation, ReleaseInfo};
use crate::engine::gc;
use crate::engine::Progress;
use crate::output::Output;
use crate::system::app_user;
use crate::system::hooks::HookName;
use crate::system::ownership;
use crate::system::systemd::Systemd;
use crate::system::web::{self, WebConfig, WebReport};
use pyapp_cli::Refusal;
use pyapp_fs::fault;
use pyapp_fs::lock::{AppLock, WhenHeld};
use pyapp_venv::interpreter::Interpreter;
use pyapp_venv::store::Store;
use pyapp_venv::venv::Venv;
use pyapp_venv::wheel_install::{
    self, InstallOptions, Placement, WheelInput, WheelInstallError, WheelProblem,
};

/// The metadata entry of a bundle.
const METADATA_NAME: &str = "metadata.yaml";
/// The configuration spec entry of a bundle.
const CONFIGURATION_NAME: &str = "configuration.yaml";

/// The mode of the writable directories created under data/.
const WRITABLE_DIR_MODE: u32 = 0o750;

/// What an install did, as `--json` reports it (and `watch` records it).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    pub action: Action,
    pub app: String,
    pub version: String,
    pub release: String,
    pub path: String,
    pub dry_run: bool,
    /// The web server snippets and links (FORMAT.md 11), when the app has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<WebReport>,
}

/// The kind of change an install makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The app was not installed.
    Installed,
    /// Another release of the app was current.
    Upgraded,
    /// This bundle's release was already current: nothing was written.
    Unchanged,
    /// The release was built (or found on disk) and recorded as staged, not switched to.
    Staged,
}

impl Action {
    /// Installing over what `previous` (the app's receipt, if any) describes.
    fn over(previous: Option<&Receipt>, step: Step) -> Action {
        match (previous, step) {
            (_, Step::Stage) => Action::Staged,
            (Some(_), Step::Activate) => Action::Upgraded,
            (None, Step::Activate) => Action::Installed,
        }
    }

    fn verb(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Action::Installed, false) => "installed",
            (Action::Installed, true) => "would install",
            (Action::Upgraded, false) => "upgraded",
            (Action::Upgraded, true) => "would upgrade",
            (Action::Unchanged, _) => "unchanged:",
            (Action::Staged, false) => "staged",
            (Action::Staged, true) => "would stage",
        }
    }
}

/// The install action: `pyapp-install BUNDLE`.
pub fn install(root: &Path, apps: &AppsDir, args: &InstallArgs, output: &Output) -> Result<Report> {
    let bundle_path = args
        .bundle
        .as_deref()
        .context("no bundle given (the command line parser should have refused)")?;
    let mut file = open_bundle_file(bundle_path)?;
    let identity = BundleFile::of(&file)
        .with_context(|| format!("failed to inspect `{}`", bundle_path.display()))?;

    // A bundle that is already current needs no verification and no lock: it is the very
    // file that was verified and installed (the same file, unchanged since, or one with
    // the same sha256), and nothing will be written (unless --web asks to link it, which
    // is done under the lock below).
    let same_file = |receipt: &Receipt| {
        receipt
            .current()
            .is_some_and(|record| record.bundle_file == Some(identity))
    };
    if let Some((tree, receipt)) = find_current_install(apps, same_file)? {
        if args.web.is_none() {
            return report_unchanged(args, output, &tree, &receipt);
        }
    }
    // Hashing the file (the hash names the release) and verifying its entries each read
    // every byte: side by side, while the interpreter named by --python answers.
    let mut steps = StepLog::new();
    steps.begin("hash and verify the bundle");
    let (bundle_sha256, opened, queried) = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| hash_file(&mut file, bundle_path));
        let querying = args
            .python
            .as_deref()
            .map(|path| scope.spawn(move || (path, Interpreter::query(path))));
        let opened = open_bundle(bundle_path);
        let hashed = hashing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let queried = querying.map(|query| {
            query
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (hashed, opened, queried)
    });
    let bundle_sha256 = bundle_sha256?;
    let same_bytes = |receipt: &Receipt| receipt.bundle_sha256 == bundle_sha256;
    if let Some((tree, receipt)) = find_current_install(apps, same_bytes)? {
        if args.web.is_none() {
            return report_unchanged(args, output, &tree, &receipt);
        }
    }
    let (mut bundle, metadata, spec) = opened?;
    // Remembered only when the file did not change while it was hashed and verified.
    let unchanged = BundleFile::of(&file).ok() == Some(identity);
    drop(file);
    TrustPolicy::load(apps, &args.trusted_keys)?.check(&bundle, output)?;
    let requires = &metadata.requires_python;
    let interpreter = match queried {
        Some((path, queried)) => queried.and_then(|found| found.require(path, requires)),
        None => Interpreter::find(None, requires),
    }
    .map_err(|err| {
        Refusal::new(err.to_string())
            .with_hint("install a matching python3.X, or name one with --python PATH")
    })?;
    Systemd::detect(root).check_app_units(&metadata)?;
    let tree = apps.app(metadata.name.as_str())?;
    let version = metadata.version.to_string();
    let release = release::release_name(&version, &bundle_sha256);
    let previous = Receipt::load(&tree.receipt_path())?;
    let step = policy::gate(&tree, previous.as_ref(), &metadata.version, args)?;
    let action = Action::over(previous.as_ref(), step);
    let record = ReleaseRecord {
        release: release.clone(),
        version: version.clone(),
        bundle_sha256,
        installed_at: now_rfc3339(),
        python: interpreter.base_executable.display().to_string(),
        python_version: interpreter.target.version.to_string(),
        bundle_file: unchanged.then_some(identity),
    };
    let keep = usize::from(metadata.update.keep_releases);
    // --no-verify-record installs every wheel locally: the store only holds verified ones.
    let store = (!args.no_verify_record).then(|| Store::of(apps.path()));

    if args.dry_run {
        describe_plan(&tree, &metadata, previous.as_ref(), &record, keep, output)?;
        if let Some(store) = &store {
            describe_store(store, &bundle, &metadata, output);
        }
        return report(output, action, &tree, (&version, &release), true, None);
    }

    let missing = outermost_missing(&tree)?;
    create_app_dirs(apps, &tree)?;
    let when_held = if args.wait {
        WhenHeld::Wait
    } else {
        WhenHeld::FailFast
    };
    let _lock = AppLock::acquire(&tree.lock_path(), tree.name(), when_held)?;
    let new_app_dir = NewAppDir(missing);
    // Whoever held the lock before us may have changed the app: read it again.
    let previous = Receipt::load(&tree.receipt_path())?;
    if let Some(receipt) = &previous {
        if receipt.bundle_sha256 == record.bundle_sha256 && is_current(&tree, receipt)? {
            check_same_python(args.python.as_deref(), &tree, receipt)?;
            new_app_dir.keep();
            // Only --web brings an unchanged install here: link the current release.
            let web = match args.web {
                Some(server) => {
                    let current = ReleaseInfo::of_receipt(&tree, receipt, &receipt.release)?;
                    let systemd = Systemd::detect(root);
                    let config = WebConfig {
                        root,
                        tree: &tree,
                        systemd: &systemd,
                        output,
                    };
                    config.check_can_link(server, &current.metadata)?;
                    let site = web::Site::of(&tree, &current.metadata)?;
                    Some(config.publish(site.as_ref(), Some(server))?)
                }
                None => None,
            };
            return report(
                output,
                Action::Unchanged,
                &tree,
                (&version, &release),
                false,
                web.as_ref(),
            );
        }
    }
    let step = policy::gate(&tree, previous.as_ref(), &metadata.version, args)?;
    let action = Action::over(previous.as_ref(), step);
    for stale in release::remove_stale_staging(&tree)? {
        output.note(&format!(
            "removed {stale}, left by an interrupted earlier run"
        ));
    }
    if let Some(server) = args.web {
        let systemd = Systemd::detect(root);
        WebConfig {
            root,
            tree: &tree,
            systemd: &systemd,
            output,
        }
        .check_can_link(server, &metadata)?;
    }
    let lasting = lasting_dirs(&tree, &metadata);
    for (dir, _) in &lasting {
        pyapp_fs::check_dir_or_missing(dir)?;
    }
    // The configuration is decided before anything is built: a value the new spec refuses
    // refuses the upgrade while the old release keeps running.
    let given = GivenValues::parse(&spec, &args.set, args.config.as_deref())?;
    let config_file = ConfigFile::new(&tree, &spec);
    let existing = config_file.read(&spec)?;
    let config = config_file.plan(&spec, existing.as_ref(), &given)?;

    let built_now = !pyapp_fs::is_real_dir(&tree.release_dir(&release))?;
    steps.begin(format!("build release {release}"));
    if built_now {
        let staging = Staging::create(&tree, &release)?;
        let runtime_dir = tree.runtime_release_dir(&release);
        let options = InstallOptions {
            verify_record: !args.no_verify_record,
            compile_bytecode: args.compile_bytecode,
        };
        let staged = stage_release(
            &mut bundle,
            &metadata,
            &interpreter,
            &staging,
            &runtime_dir,
            &options,
            store.as_ref(),
            output,
        );
        if let Err(err) = staged {
            // Store entries this run published may have no other user.
            drop(staging);
            gc::collect_after(apps, output);
            return Err(err);
        }
        fault::point("staged");
        staging.finish()?;
        fault::point("after-staging");
    } else {
        let then = match step {
            Step::Activate => "; switching to it",
            Step::Stage => "",
        };
        output.note(&format!("release {release} is already on disk{then}"));
    }
    if let (Step::Stage, Some(receipt)) = (step, &previous) {
        if let Some(replaced) = release::save_staged(&tree, receipt, record)? {
            output.note(&format!(
                "removed release {replaced}, staged earlier and never switched to"
            ));
        }
        return report(output, action, &tree, (&version, &release), false, None);
    }
    steps.begin("app user, units, configuration");
    let discard_new = || -> Result<()> {
        if built_now {
            release::remove_release(&tree, &release)?;
            gc::collect_after(apps, output);
        }
        Ok(())
    };
    // An upgrade keeps the user the app was installed with (`--user` is remembered).
    let remembered = previous
        .as_ref()
        .and_then(|receipt| receipt.user.as_deref())
        .filter(|name| *name != tree.name());
    let explicit = args.user.as_deref().or(remembered);
    let user = match app_user::ensure_app_user(root, &tree, explicit, output) {
        Ok(user) => user,
        Err(err) => {
            discard_new()?;
            return Err(err);
        }
    };
    let writable_dirs = metadata.resources.writable_dirs.clone();

    let activation = Activation {
        apps,
        tree: &tree,
        systemd: Systemd::detect(root),
        user: user.as_ref(),
        port_range: args.port_range,
        output,
    };
    let new = ReleaseInfo {
        release: release.clone(),
        metadata,
        spec,
        python: interpreter.base_executable.clone(),
    };
    let old = match &previous {
        Some(receipt) => match release::running_before(&tree, receipt, &release)? {
            Some(current) if current != release => {
                Some(ReleaseInfo::of_receipt(&tree, receipt, &current)?)
            }
            _ => None,
        },
        None => None,
    };
    let units = match activation.units_for(&new) {
        Ok(units) => units,
        Err(err) => {
            discard_new()?;
            return Err(err);
        }
    };
    // The web server snippets are written once the release runs, but refused now.
    let site = match web::Site::of(&tree, &new.metadata) {
        Ok(site) => site,
        Err(err) => {
            discard_new()?;
            return Err(err);
        }
    };
    for (dir, mode) in &lasting {
        pyapp_fs::ensure_dir(dir, *mode)?;
    }
    if let Some(user) = &user {
        ownership::own_lasting_dirs(&tree, user, &writable_dirs)?;
        web::own_run_dir(root, &tree, user, &new.metadata, output)?;
    }
    for note in config.notes() {
        output.note(&note);
    }
    config.write(user.as_ref().map(|user| (user.uid, user.gid)))?;
    fault::point("after-config");
    steps.begin("hooks, switch, start the units, health check");
    if old.is_some() {
        if let Err(err) = activation.hook(HookName::PreUpdate, &new) {
            discard_new()?;
            return Err(err.context(format!(
                "{} {version} not installed, {} keeps running",
                tree.name(),
                describe(old.as_ref())
            )));
        }
    }
    activation.stop()?;
    fault::point("after-stop");
    release::switch_current(&tree, &release)?;
    fault::point("after-switch");
    let after = if old.is_some() {
        HookName::PostUpdate
    } else {
        HookName::PostInstall
    };
    let activated = activation
        .hook(after, &new)
        .and_then(|()| activation.start(&units))
        .and_then(|()| activation.check_health(&new));
    if let Err(err) = activated {
        activation.revert_to(old.as_ref())?;
        discard_new()?;
        return Err(err.context(format!(
            "{} {version} was rolled back, {} runs",
            tree.name(),
            describe(old.as_ref())
        )));
    }

    steps.begin("receipt, old releases, store");
    let mut receipt = Receipt::with_current(tree.name(), previous.as_ref(), record);
    receipt.user = user.as_ref().map(|user| user.name.clone());
    let (receipt, pruned) = release::prune(&tree, &receipt, keep)?;
    fault::point("before-receipt");
    receipt.save(&tree.receipt_path())?;
    fault::point("after-receipt");
    for name in &pruned {
        output.note(&format!("removed old release {name}"));
    }
    if !pruned.is_empty() {
        gc::collect_after(apps, output);
    }
    new_app_dir.keep();
    steps.begin("web server");
    let web = WebConfig {
        root,
        tree: &tree,
        systemd: &activation.systemd,
        output,
    }
    .publish(site.as_ref(), args.web)
    .with_context(|| format!("{} {version} is installed and running", tree.name()))?;
    steps.end();
    report(
        output,
        action,
        &tree,
        (&version, &release),
        false,
        Some(&web).filter(|web| web.snippets.is_some()),
    )
}

/// A bundle whose release is current: nothing to do (but an interpreter other than the
/// release's is refused).
fn report_unchanged(
    args: &InstallArgs,
    output: &Output,
    tree: &AppTree,
    receipt: &Receipt,
) -> Result<Report> {
    check_same_python(args.python.as_deref(), tree, receipt)?;
    report(
        output,
        Action::Unchanged,
        tree,
        (&receipt.version, &receipt.release),
        false,
        None,
    )
}

/// The release that runs after a refused or rolled-back upgrade, for messages.
fn describe(release: Option<&ReleaseInfo>) -> String {
    match release {
        Some(info) => format!(
            "version {} (release {})",
            info.metadata.version, info.release
        ),
        None => "no release".to_string(),
    }
}

/// `--dry-run`: what the install would create, build and remove, on stderr.
fn describe_plan(
    tree: &AppTree,
    metadata: &Metadata,
    previous: Option<&Receipt>,
    record: &ReleaseRecord,
    keep: usize,
    output: &Output,
) -> Result<()> {
    for (dir, _) in lasting_dirs(tree, metadata) {
        if !pyapp_fs::exists(&dir)? {
            output.note(&format!("would create {}", dir.display()));
        }
    }
    if pyapp_fs::is_real_dir(&tree.release_dir(&record.release))? {
        output.note(&format!(
            "would switch to release {} (already on disk)",
            record.release
        ));
    } else {
        output.note(&format!(
            "would build release {} with {} wheels for Python {}",
            record.release,
            metadata.dependencies.len(),
            record.python_version
        ));
    }
    let receipt = Receipt::with_current(tree.name(), previous, record.clone());
    for name in release::releases_to_prune(tree, &receipt, keep)? {
        output.note(&format!("would remove old release {name}"));
    }
    if metadata.proxied_service().is_some() {
        output.note(&format!(
            "would write the web server snippets of {} {} to {}",
            tree.name(),
            metadata.version,
            tree.dir().join("web").display()
        ));
    }
    Ok(())
}

/// Opens the bundle file given on the command line.
fn open_bundle_file(path: &Path) -> Result<File> {
    File::open(path).map_err(|err| {
        Refusal::new(format!(
            "cannot read the bundle `{}`: {err}",
            path.display()
        ))
        .with_hint("check the path; pyapp-build writes bundles as NAME-VERSION.pyapp")
        .into()
    })
}

/// The sha256 of the bundle file, as lowercase hex: it names the release and tells a
/// repeated install from a new one.
fn hash_file(file: &mut File, path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("failed to read `{}`", path.display()))
            }
        };
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The app whose current release came from the bundle `from_bundle` recognises, if any.
/// A receipt that cannot be read is skipped here: this is only the fast path, and the app
/// being installed has its receipt read again, strictly, under its lock.
fn find_current_install(
    apps: &AppsDir,
    from_bundle: impl Fn(&Receipt) -> bool,
) -> Result<Option<(AppTree, Receipt)>> {
    for tree in apps.installed_apps()? {
        if let Ok(Some(receipt)) = Receipt::load(&tree.receipt_path()) {
            if from_bundle(&receipt) && is_current(&tree, &receipt)? {
                return Ok(Some((tree, receipt)));
            }
        }
    }
    Ok(None)
}

/// Whether the tree agrees with the receipt about the current release.
fn is_current(tree: &AppTree, receipt: &Receipt) -> Result<bool> {
    Ok(
        release::current_release(tree)?.as_deref() == Some(receipt.release.as_str())
            && pyapp_fs::is_real_dir(&tree.release_dir(&receipt.release))?,
    )
}

/// A release keeps the interpreter it was built with: asking for another one for the
/// bundle that is already current is refused rather than ignored.
fn check_same_python(explicit: Option<&Path>, tree: &AppTree, receipt: &Receipt) -> Result<()> {
    let Some(path) = explicit else {
        return Ok(());
    };
    // The path the release was installed with needs no asking the interpreter.
    if path == Path::new(&receipt.python) {
        return Ok(());
    }
    let interpreter = Interpreter::query(path).map_err(|err| Refusal::new(err.to_string()))?;
    if interpreter.base_executable.display().to_string() == receipt.python {
        return Ok(());
    }
    Err(Refusal::new(format!(
        "{} {} is already installed from this bundle with {}, not {}",
        tree.name(),
        receipt.version,
        receipt.python,
        interpreter.base_executable.display()
    ))
    .with_hint(format!(
        "to change the interpreter: `pyapp-install remove {}` (config/ and data/ stay), then install with --python",
        tree.name()
    ))
    .into())
}

/// Opens and verifies the bundle (every entry's size and sha256), its metadata and its
/// configuration spec.
fn open_bundle(path: &Path) -> Result<(Bundle, Metadata, ConfigSpec)> {
    let refuse = |err: &dyn std::fmt::Display| {
        Refusal::new(format!("refusing the bundle: {err}"))
            .with_hint("rebuild it with pyapp-build, or copy it again if it was damaged")
    };
    let bundle_error = |err: BundleError| match err.kind() {
        ErrorKind::BadBundle => anyhow::Error::new(refuse(&err)),
        ErrorKind::Io => anyhow::Error::new(err),
    };
    let mut bundle = Bundle::open(path, &Limits::default()).map_err(bundle_error)?;
    let bytes = bundle
        .read_small(METADATA_NAME, MAX_YAML_BYTES as u64)
        .map_err(bundle_error)?;
    let text =
        String::from_utf8(bytes).map_err(|_| refuse(&format!("{METADATA_NAME} is not UTF-8")))?;
    let metadata = Metadata::parse(&text, METADATA_NAME).map_err(|err| refuse(&err))?;
    let bytes = bundle
        .read_small(CONFIGURATION_NAME, MAX_YAML_BYTES as u64)
        .map_err(bundle_error)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| refuse(&format!("{CONFIGURATION_NAME} is not UTF-8")))?;
    let spec = ConfigSpec::parse(&text, CONFIGURATION_NAME).map_err(|err| refuse(&err))?;
    let deps: Vec<(String, String)> = bundle
        .entries()
        .iter()
        .filter_map(|entry| {
            let wheel = entry.name.strip_prefix("deps/")?;
            Some((wheel.to_owned(), hex::encode(entry.sha256)))
        })
        .collect();
    metadata
        .check_dependencies(&deps)
        .map_err(|err| refuse(&err))?;
    metadata
        .check_static_paths(bundle.entries().iter().map(|entry| entry.name.as_str()))
        .map_err(|err| refuse(&err))?;
    Ok((bundle, metadata, spec))
}

/// The outermost of `APPS/APP/` and its parents that does not exist yet, if any.
fn outermost_missing(tree: &AppTree) -> Result<Option<PathBuf>> {
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
    Ok(missing)
}

/// The directory a first install created (see [`outermost_missing`]), removed again when
/// the install fails (dropped without [`NewAppDir::keep`], after the lock was taken):
/// a refused first install leaves the root as it found it.
struct NewAppDir(Option<PathBuf>);

impl NewAppDir {
    fn keep(mut self) {
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

/// `APPS/`, `APPS/APP/` and `APPS/APP/.pyapp/`, created when missing.
fn create_app_dirs(apps: &AppsDir, tree: &AppTree) -> Result<()> {
    if !pyapp_fs::is_real_dir(apps.path())? {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(apps.path())
            .with_context(|| format!("failed to create `{}`", apps.path().display()))?;
    }
    pyapp_fs::ensure_dir(tree.dir(), 0o755)?;
    pyapp_fs::ensure_dir(&tree.state_dir(), 0o755)?;
    Ok(())
}

/// config/, data/, tmp/, run/, log/ and the writable directories the metadata asks for
/// under data/, with their modes: created when missing, left alone when present, refused
/// when a link.
fn lasting_dirs(tree: &AppTree, metadata: &Metadata) -> Vec<(PathBuf, u32)> {
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

/// Fills the staging directory: `src/` from the bundle, then `venv/` with every wheel,
/// read in place from the bundle; the shared ones through `store`.
#[allow(clippy::too_many_arguments)]
fn stage_release(
    bundle: &mut Bundle,
    metadata: &Metadata,
    interpreter: &Interpreter,
    staging: &Staging,
    runtime_dir: &Path,
    options: &InstallOptions,
    store: Option<&Store>,
    output: &Output,
) -> Result<()> {
    let mut sources: Vec<String> = entries_under(bundle, "src/");
    sources.extend([METADATA_NAME.to_string(), CONFIGURATION_NAME.to_string()]);
    let mut steps = StepLog::new();
    steps.begin(format!("extract {} source files", sources.len()));
    let bar = output.task("extracting", sources.len() as u64);
    for name in &sources {
        bundle.extract_entry_to_path(name, staging.dir())?;
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
    )?;
    let shared: HashMap<&str, DependencyMode> = metadata
        .dependencies
        .iter()
        .map(|dependency| (dependency.wheel.as_str(), dependency.mode))
        .collect();
    let mut wheels = Vec::new();
    for entry in bundle.entries() {
        let Some(file_name) = entry.name.strip_prefix("deps/") else {
            continue;
        };
        let placement = match shared.get(file_name) {
            Some(DependencyMode::Shared) => Placement::Shared {
                sha256: hex::encode(entry.sha256),
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
    let session = store.map(Store::open_for_install).transpose()?;
    let bar = output.task("installing", wheels.len() as u64);
    let installed =
        wheel_install::install_from(&venv, wheels, session.as_ref(), options, &|| bar.advance(1));
    bar.finish();
    let installed = installed.map_err(wheel_error)?;
    steps.end();
    for note in installed.notes {
        output.note(&note);
    }
    for warning in installed.warnings {
        output.warning(&warning);
    }
    Ok(())
}

/// `--dry-run`: how many shared wheels the store has and would be linked, how many it
/// would get.
fn describe_store(store: &Store, bundle: &Bundle, metadata: &Metadata, output: &Output) {
    let (mut linked, mut unpacked, mut local) = (0, 0, 0);
    for dependency in &metadata.dependencies {
        match dependency.mode {
            DependencyMode::Local => local += 1,
            DependencyMode::Shared => {
                let sha256 = bundle
                    .entry(&format!("deps/{}", dependency.wheel))
                    .map(|entry| hex::encode(entry.sha256));
                match sha256.map(|sha256| store.entry_dir(&sha256).is_dir()) {
                    Some(true) => linked += 1,
                    _ => unpacked += 1,
                }
            }
        }
    }
    output.note(&format!(
        "would link {linked} shared wheel(s) from the store {}, unpack {unpacked} into it first, and extract {local} local wheel(s)",
        store.dir().display()
    ));
}

/// A wheel that cannot be installed is the bundle's fault (exit 1), unless this machine
/// failed to read or write a file.
fn wheel_error(err: WheelInstallError) -> anyhow::Error {
    match &err {
        WheelInstallError::Wheel {
            problem: WheelProblem::Open { .. } | WheelProblem::Write { .. },
            ..
        }
        | WheelInstallError::Compile { .. }
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

/// The names of the bundle's entries that start with `prefix`.
fn entries_under(bundle: &Bundle, prefix: &str) -> Vec<String> {
    bundle
        .entries()
        .iter()
        .filter(|entry| entry.name.starts_with(prefix))
        .map(|entry| entry.name.clone())
        .collect()
}

/// Tells the user (stderr) and the caller (`--json` on stdout) what happened.
fn report(
    output: &Output,
    action: Action,
    tree: &AppTree,
    (version, release): (&str, &str),
    dry_run: bool,
    web: Option<&WebReport>,
) -> Result<Report> {
    let report = Report {
        action,
        app: tree.name().to_owned(),
        version: version.to_owned(),
        release: release.to_owned(),
        path: tree.dir().display().to_string(),
        dry_run,
        web: web.cloned(),
    };
    if output.json() {
        output.print_json(&report)?;
    }
    output.note(&format!(
        "{} {} {version} (release {release}) in {}",
        action.verb(dry_run),
        tree.name(),
        tree.dir().display()
    ));
    Ok(report)
}
