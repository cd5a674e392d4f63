//! Installing a bundle, as four steps over one [`InstallRequest`]:
//!
//! 1. [`verify`]: recognise the bundle (the file installed before, unchanged, or a bundle
//!    with the same sha256, already current, is a no-op), check every entry, its metadata,
//!    its signature against the trusted keys, and find the interpreter. Nothing is written
//!    before this has passed.
//! 2. [`stage`]: under the app's lock, build the release in a staging directory (source
//!    tree, venv, wheels read in place from the bundle, the shared ones through the store),
//!    make it durable and rename it into `releases/`.
//! 3. [`activate`]: the app user, units, configuration, hooks; switch `current`, start the
//!    units, check health, rolling back to the old release when that fails. Until the
//!    switch, a [`activate::NewRelease`] guard removes the release this run built whenever
//!    the install stops early.
//! 4. [`prune`]: remove old releases and write the receipt (as the activation's last step,
//!    undone with it), delete the store entries the pruned releases alone used, publish
//!    the web server snippets.

mod activate;
mod plan;
mod prune;
mod space;
mod stage;
mod verify;

use std::path::PathBuf;

use anyhow::Result;
use pyapp_cli::StepLog;
use serde::Serialize;

use crate::app::config_file::{ConfigFile, GivenValues};
use crate::app::installed::ReleaseInfo;
use crate::app::policy::{self, Rules, Step};
use crate::app::receipt::now_rfc3339_millis;
use crate::app::receipt::Receipt;
use crate::app::release;
use crate::app::tree::AppTree;
use crate::engine::{notify, Target};
use crate::system::notify::EventKind;
use crate::system::privilege::spawn_as_nobody;
use crate::system::web::{self, Server, WebConfig, WebReport};
use pyapp_fs::lock::{AppLock, WhenHeld};
use pyapp_venv::store::Store;
use pyapp_venv::wheel_install::{Confine, InstallOptions};

use activate::NewRelease;
pub use space::DEFAULT_MAX_INSTALLED_SIZE;
use stage::NewAppDir;
use verify::Verified;

/// What to install and how: `pyapp-install BUNDLE`'s options, or what `watch` asks for.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    /// The `.pyapp` file.
    pub bundle: PathBuf,
    /// The interpreter of the release's venv; `None` finds the newest that fits.
    pub python: Option<PathBuf>,
    /// Say what would change, write nothing.
    pub dry_run: bool,
    /// What to do when another pyapp-install holds the app's lock.
    pub when_held: WhenHeld,
    /// RECORD checking and bytecode compilation.
    pub options: InstallOptions,
    /// The account the app runs as; `None` keeps the remembered one or makes the app's own.
    pub user: Option<String>,
    /// `KEY=VALUE` configuration values.
    pub set: Vec<String>,
    /// A YAML file of configuration values.
    pub config: Option<PathBuf>,
    /// Minisign public keys a bundle must be signed with (besides the apps directory's).
    pub trusted_keys: Vec<PathBuf>,
    /// Which versions are taken, and whether the release is only staged.
    pub rules: Rules,
    /// Link the app into this web server.
    pub web: Option<Server>,
    /// The most the release may take on disk, in bytes (`--max-installed-size`).
    pub max_installed_size: u64,
}

/// What an install did, as `--json` reports it (and `watch` records it).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct InstallReport {
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

/// How the wheels are installed: RECORD checked unless `verify_record` is off, and with
/// `compile_bytecode` bytecode compiled by a compiler that runs as `nobody`.
pub fn options(verify_record: bool, compile_bytecode: bool) -> InstallOptions {
    InstallOptions {
        verify_record,
        compile_bytecode: compile_bytecode.then_some(spawn_as_nobody as Confine),
    }
}

/// Installs `request.bundle` as a release of its app under `target`.
pub fn install(request: &InstallRequest, target: &Target) -> Result<InstallReport> {
    let mut steps = StepLog::new();
    let verified = match verify::verify(request, target)? {
        Verified::Current { tree, receipt } => {
            return Ok(report(
                target,
                Action::Unchanged,
                &tree,
                &receipt.version,
                &receipt.release,
                false,
                None,
            ));
        }
        Verified::Bundle(verified) => verified,
    };
    let verify::Bundle {
        mut bundle,
        metadata,
        spec,
        record,
        interpreter,
        answers,
        pending,
        known,
    } = *verified;
    let apps = &target.apps;
    let progress = target.progress();
    let tree = apps.app(metadata.name.as_str())?;
    let version = metadata.version.to_string();
    let release = record.release.clone();
    let previous = Receipt::load(&tree.receipt_path())?;
    let step = policy::gate(&tree, previous.as_ref(), &metadata.version, request.rules)?;
    let keep = usize::from(metadata.update.keep_releases);
    // Without RECORD checks every wheel is installed locally: the store only holds verified ones.
    let store = request
        .options
        .verify_record
        .then(|| Store::of(apps.path()));

    if request.dry_run {
        pending.finish()?;
        plan::describe(&tree, &metadata, previous.as_ref(), &record, keep, progress)?;
        if let Some(store) = &store {
            plan::describe_store(store, &bundle, &metadata, progress);
        }
        let action = Action::over(previous.as_ref(), step);
        return Ok(report(
            target, action, &tree, &version, &release, true, None,
        ));
    }

    let missing = stage::create_app_dirs(apps, &tree)?;
    let _lock = AppLock::acquire(&tree.lock_path(), tree.name(), request.when_held)?;
    let new_app_dir = NewAppDir::after_lock(missing);
    // Whoever held the lock before us may have changed the app: read it again.
    let previous = Receipt::load(&tree.receipt_path())?;
    if let Some(receipt) = &previous {
        let same = record
            .content_sha256
            .as_deref()
            .is_some_and(|content| receipt.is_from(content));
        if same && verify::is_current(&tree, receipt)? {
            pending.finish()?;
            verify::check_same_python(request.python.as_deref(), &tree, receipt)?;
            new_app_dir.keep();
            // Only --web brings an unchanged install here: link the current release.
            let web = match request.web {
                Some(server) => Some(link_current(target, &tree, receipt, server)?),
                None => None,
            };
            return Ok(report(
                target,
                Action::Unchanged,
                &tree,
                &version,
                &release,
                false,
                web.as_ref(),
            ));
        }
    }
    let step = policy::gate(&tree, previous.as_ref(), &metadata.version, request.rules)?;
    let action = Action::over(previous.as_ref(), step);
    for stale in release::remove_stale_staging(&tree)? {
        progress.note(&format!(
            "removed {stale}, left by an interrupted earlier run"
        ));
    }
    if let Some(server) = request.web {
        web_config(target, &tree).check_can_link(server, &metadata)?;
    }
    let lasting = stage::lasting_dirs(&tree, &metadata);
    for (dir, _) in &lasting {
        pyapp_fs::check_dir_or_missing(dir)?;
    }
    // The configuration is decided before anything is built: a value the new spec refuses
    // refuses the upgrade while the old release keeps running.
    let given = GivenValues::parse(&spec, &request.set, request.config.as_deref())?;
    let config_file = ConfigFile::new(&tree, &spec);
    let existing = config_file.read(&spec)?;
    let config = config_file.plan(&spec, existing.as_ref(), &given)?;

    steps.begin(format!("build release {release}"));
    let built_now = stage::build(
        &mut bundle,
        &metadata,
        &interpreter,
        &tree,
        &release,
        &request.options,
        &record,
        store.as_ref().map(|store| (store, known)),
        pending,
        target,
    )?;
    // The build opened the store: the interpreter's answer is kept beside it.
    if store.is_some() {
        answers.save()?;
    }
    if !built_now {
        let then = match step {
            Step::Activate => "; switching to it",
            Step::Stage => "",
        };
        progress.note(&format!("release {release} is already on disk{then}"));
    }
    if let (Step::Stage, Some(receipt)) = (step, &previous) {
        if let Some(replaced) = release::save_staged(&tree, receipt, record)? {
            progress.note(&format!(
                "removed release {replaced}, staged earlier and never switched to"
            ));
        }
        return Ok(report(
            target, action, &tree, &version, &release, false, None,
        ));
    }

    steps.begin("app user, units, configuration, hooks, switch, health check");
    let new_release = NewRelease::guard(target, &tree, &release, built_now);
    let new = ReleaseInfo {
        release: release.clone(),
        metadata,
        spec,
        python: interpreter.base_executable.clone(),
    };
    let started_at = now_rfc3339_millis();
    let activated = activate::activate(
        target,
        &tree,
        previous.as_ref(),
        request.user.as_deref(),
        &new,
        &lasting,
        config,
        new_release,
        |user| {
            steps.begin("receipt, old releases, store");
            prune::record(&tree, previous.as_ref(), record, user, keep)
        },
    )
    .inspect_err(|err| {
        let kind = match previous {
            Some(_) => EventKind::UpgradeFailed,
            None => EventKind::InstallFailed,
        };
        notify::activation_failed(target, &tree, kind, (&version, &release), &started_at, err);
    })?;
    new_app_dir.keep();
    prune::report_pruned(target, &activated.pruned);
    steps.begin("web server");
    let web = prune::publish_web(
        target,
        &tree,
        &new.metadata,
        activated.site.as_ref(),
        request.web,
    )?;
    steps.end();
    Ok(report(
        target,
        action,
        &tree,
        &version,
        &release,
        false,
        Some(&web).filter(|web| web.snippets.is_some()),
    ))
}

/// Links the current release of an unchanged install into `server`.
fn link_current(
    target: &Target,
    tree: &AppTree,
    receipt: &Receipt,
    server: Server,
) -> Result<WebReport> {
    let current = ReleaseInfo::of_receipt(tree, receipt, &receipt.release)?;
    let config = web_config(target, tree);
    config.check_can_link(server, &current.metadata)?;
    let site = web::Site::of(tree, &current.metadata)?;
    config.publish(site.as_ref(), Some(server))
}

/// The web server configuration of `tree`'s app under `target`.
fn web_config<'a>(target: &'a Target, tree: &'a AppTree) -> WebConfig<'a> {
    WebConfig {
        root: &target.root,
        tree,
        systemd: &target.systemd,
        output: target.progress(),
    }
}

/// What happened, as a report, said on the way (`installed hello 1.0 (release …) in …`).
fn report(
    target: &Target,
    action: Action,
    tree: &AppTree,
    version: &str,
    release: &str,
    dry_run: bool,
    web: Option<&WebReport>,
) -> InstallReport {
    target.progress().note(&format!(
        "{} {} {version} (release {release}) in {}",
        action.verb(dry_run),
        tree.name(),
        tree.dir().display()
    ));
    InstallReport {
        action,
        app: tree.name().to_owned(),
        version: version.to_owned(),
        release: release.to_owned(),
        path: tree.dir().display().to_string(),
        dry_run,
        web: web.cloned(),
    }
}
