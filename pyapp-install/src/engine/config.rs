//! `pyapp-install config APP`: shows an app's configuration file (secrets masked) or, with
//! `--set KEY=VALUE` / `--config FILE`, changes it: checked against the current release's
//! configuration.yaml and saved atomically under the app's lock (FORMAT.md 4.1); the app's
//! running services then take it: handed over to (checked first) or restarted, or reloaded
//! where the change leaves their units and environment as they are.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use pyapp_bundle::config_spec::ConfigValue;
use pyapp_bundle::metadata::Metadata;
use serde::Serialize;

use crate::app::config_file::{ConfigFile, ConfigValues, GivenValues, MASK};
use crate::app::installed::ReleaseInfo;
use crate::app::receipt::Receipt;
use crate::app::release;
use crate::app::tree::{AppTree, AppsDir};
use crate::engine::activation::Activation;
use crate::engine::notify;
use crate::engine::Target;
use crate::progress::Progress;
use crate::system::app_user;
use crate::system::notify::EventKind;
use crate::system::systemd::Systemd;
use crate::system::units::{self, Instance, UnitFile};
use pyapp_cli::Refusal;
use pyapp_fs::lock::{AppLock, WhenHeld};

/// What `config APP --set` did, as `--json` reports it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ConfigChange {
    /// `changed` when the file was written, `unchanged` when it already said this.
    pub action: &'static str,
    pub app: String,
    /// The file, as pyapp-install wrote it (under `--root`).
    pub file: PathBuf,
    /// The keys given, added or generated whose value changed, in the spec's order.
    pub changed_keys: Vec<String>,
    /// Keys of the file that the spec no longer has (kept in the file, unused).
    pub removed_keys: Vec<String>,
    /// The service units restarted because the file changed (those that were running).
    pub restarted: Vec<String>,
    /// The service units that took the new file by reloading instead (FORMAT.md 8.8).
    pub reloaded: Vec<String>,
}

impl ConfigChange {
    /// Whether the file was written (the app's services should then be restarted).
    pub fn written(&self) -> bool {
        self.action == "changed"
    }
}

/// The configuration as `config APP` shows it (`--json` prints it).
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ConfigShown {
    pub app: String,
    pub file: String,
    pub exists: bool,
    /// The spec's keys that have a value, secrets masked.
    pub values: BTreeMap<String, ConfigValue>,
    /// The spec's keys without a value.
    pub not_set: Vec<String>,
    /// Keys of the file that the spec does not have.
    pub removed_keys: Vec<String>,
    /// One `KEY = VALUE` line per field of the spec, in its order, then the file's keys
    /// the spec does not have; secrets (and those keys) as [`MASK`].
    #[serde(skip)]
    pub lines: Vec<String>,
}

/// A change of an app's configuration: `config APP --set KEY=VALUE… [--config FILE]`.
#[derive(Debug, Clone)]
pub struct ConfigSetRequest {
    pub app: String,
    /// `KEY=VALUE` values.
    pub set: Vec<String>,
    /// A YAML file of values.
    pub file: Option<PathBuf>,
    /// What to do when another pyapp-install holds the app's lock.
    pub when_held: WhenHeld,
}

/// Changes the app's configuration file to the values given, checked against the current
/// release's configuration.yaml, under the app's lock; when the file changed, the app's
/// running services take it (the module doc).
pub fn set(request: &ConfigSetRequest, target: &Target) -> Result<ConfigChange> {
    let output = target.progress();
    let tree = installed(&target.apps, &request.app)?;
    let _lock = AppLock::acquire(&tree.lock_path(), &request.app, request.when_held)?;
    // Read under the lock: an install that held it may have switched the release.
    let current = current_release(&tree)?;
    let given = GivenValues::parse(&current.spec, &request.set, request.file.as_deref())?;
    let file = ConfigFile::new(&tree, &current.spec);
    let existing = file.read(&current.spec)?;
    let plan = file.plan(&current.spec, existing.as_ref(), &given)?;
    for note in plan.notes() {
        output.note(&note);
    }
    let written = plan.write(None)?;
    let mut change = ConfigChange {
        action: if written { "changed" } else { "unchanged" },
        app: tree.name().to_owned(),
        file: plan.path().to_owned(),
        changed_keys: plan
            .changes()
            .iter()
            .map(|change| change.key().to_owned())
            .collect(),
        removed_keys: plan.removed_keys().into_iter().map(str::to_owned).collect(),
        restarted: Vec::new(),
        reloaded: Vec::new(),
    };
    if change.written() {
        units::write_environment_file(&tree, &current.spec.environment_values(plan.values()))?;
        let receipt = Receipt::load(&tree.receipt_path())?
            .context("the app's receipt disappeared while its lock was held")?;
        let user = app_user::user_of(&target.root, &receipt)?;
        let activation = Activation {
            apps: &target.apps,
            tree: &tree,
            systemd: target.systemd.clone(),
            user: user.as_ref(),
            port_range: target.port_range,
            output,
        };
        let before = existing.map(|existing| existing.values).unwrap_or_default();
        (change.reloaded, change.restarted) = take(&activation, &current, &before, plan.values())
            .inspect_err(|err| {
            notify::running_release_failed(
                target,
                &tree,
                (EventKind::ConfigFailed, None),
                &current,
                err,
            )
        })?;
        output.note(&format!("saved {}", change.file.display()));
    } else {
        output.note(&format!("unchanged: {}", change.file.display()));
    }
    Ok(change)
}

/// Makes the running services of `current` take the configuration `values` (it was
/// `before`): handed over to when the app can take one, else restarted, each reloaded
/// instead where its units and environment stay as they are. Returns the units reloaded
/// and those restarted or handed over to.
fn take(
    activation: &Activation,
    current: &ReleaseInfo,
    before: &ConfigValues,
    values: &ConfigValues,
) -> Result<(Vec<String>, Vec<String>)> {
    let tree = activation.tree;
    let new_units = activation.units_for(current, values)?;
    let reloading = activation.reloading(current, before, values, &new_units)?;
    let units = if activation.can_hand_over(current)? {
        hand_over(activation, current, &new_units, &reloading)?
    } else {
        // Commands may carry configuration values (`{config.KEY}`): their units change too.
        if activation.rewrite_units(&new_units)? {
            activation
                .output
                .note("units rewritten: their commands use the configuration");
        }
        restart_services(
            tree,
            &current.metadata,
            &activation.systemd,
            &reloading,
            activation.output,
        )?
    };
    Ok(units
        .into_iter()
        .partition(|unit| reloads(tree, &reloading, unit)))
}

/// The handover of FORMAT.md 8.8 to the current release with the new configuration, when
/// the app can take one: health-checked beside the running instances before it serves;
/// the services named in `reloading` then reload, the others restart. Returns the main
/// units that took the configuration.
fn hand_over(
    activation: &Activation,
    current: &ReleaseInfo,
    units: &[UnitFile],
    reloading: &[&str],
) -> Result<Vec<String>> {
    let tree = activation.tree;
    activation
        .hand_over(current, units, reloading)
        .map_err(|err| {
            err.context(format!(
                "the new configuration of {} is saved, but its instances failed their health \
             check: the running ones keep the configuration they started with",
                tree.name()
            ))
        })?;
    let units = service_units(tree, &current.metadata);
    let how = if !reloading.is_empty() && units.iter().all(|unit| reloads(tree, reloading, unit)) {
        "reloaded"
    } else {
        "handed over to"
    };
    activation.output.note(&format!(
        "{how} {} with the new configuration",
        units.join(" ")
    ));
    Ok(units)
}

/// Whether `unit` is the service unit of one of the services `reloading` names.
fn reloads(tree: &AppTree, reloading: &[&str], unit: &str) -> bool {
    reloading
        .iter()
        .any(|name| Instance::Main.service_unit(tree.name(), name) == unit)
}

/// The main service unit of each service of `metadata`.
fn service_units(tree: &AppTree, metadata: &Metadata) -> Vec<String> {
    metadata
        .services
        .iter()
        .map(|service| Instance::Main.service_unit(tree.name(), service.name.as_str()))
        .collect()
}

/// `systemctl try-restart` of the current release's services that are installed (a task
/// is not restarted: its next run reads the new file), `try-reload-or-restart` of those
/// `reloading` names. Returns the units named; nothing when systemd is not running on the
/// target root.
fn restart_services(
    tree: &AppTree,
    metadata: &Metadata,
    systemd: &Systemd,
    reloading: &[&str],
    output: &dyn Progress,
) -> Result<Vec<String>> {
    let installed = systemd.installed_units(tree.name())?;
    let units: Vec<String> = service_units(tree, metadata)
        .into_iter()
        .filter(|unit| installed.contains(unit))
        .collect();
    if units.is_empty() {
        return Ok(units);
    }
    if !systemd.is_running() {
        output.note(&format!(
            "systemd is not running on this root: restart {} for the change to apply",
            units.join(" ")
        ));
        return Ok(Vec::new());
    }
    let (reloaded, restarted): (Vec<String>, Vec<String>) = units
        .iter()
        .cloned()
        .partition(|unit| reloads(tree, reloading, unit));
    systemd.try_reload_or_restart(&reloaded)?;
    systemd.try_restart(&restarted)?;
    for (verb, units) in [("reloaded", &reloaded), ("restarted", &restarted)] {
        if !units.is_empty() {
            output.note(&format!(
                "{verb} {} (those that were running)",
                units.join(" ")
            ));
        }
    }
    Ok(units)
}

/// The app's current release: its metadata and configuration spec as its bundle had them.
fn current_release(tree: &AppTree) -> Result<ReleaseInfo> {
    let app = tree.name();
    let no_release = || {
        Refusal::new(format!("{app} has no current release"))
            .with_hint("install the app's bundle again")
    };
    let receipt = Receipt::load(&tree.receipt_path())?.ok_or_else(no_release)?;
    let release = release::current_release(tree)?.ok_or_else(no_release)?;
    ReleaseInfo::of_receipt(tree, &receipt, &release)
}

/// The app's tree, refused unless pyapp-install installed it there.
fn installed(apps: &AppsDir, app: &str) -> Result<AppTree> {
    let tree = apps.app(app)?;
    if !pyapp_fs::is_real_dir(&tree.state_dir())? || !pyapp_fs::exists(&tree.receipt_path())? {
        return Err(Refusal::new(format!(
            "{app} is not installed in {}",
            apps.path().display()
        ))
        .with_hint("`pyapp-install list` shows the installed apps")
        .into());
    }
    Ok(tree)
}

/// The configuration of the app `app`, as its current release's spec sees it. A file
/// that does not satisfy the spec is shown all the same, with a warning.
pub fn show(app: &str, target: &Target) -> Result<ConfigShown> {
    let output = target.progress();
    let tree = &installed(&target.apps, app)?;
    let spec = &current_release(tree)?.spec;
    let file = ConfigFile::new(tree, spec);
    let existing = file.read(spec)?;
    let path = existing
        .as_ref()
        .map_or_else(|| file.path(), |existing| existing.path.clone());
    let values = existing
        .as_ref()
        .map(|existing| existing.values.clone())
        .unwrap_or_default();
    if existing.is_some() {
        if let Err(err) = file.plan(spec, existing.as_ref(), &GivenValues::default()) {
            output.warning(&err.to_string());
        }
    } else {
        output.note(&format!(
            "{} has no configuration file yet (`{}`)",
            tree.name(),
            path.display()
        ));
        output.note(&format!(
            "hint: `pyapp-install config {} --set KEY=VALUE` writes it from the defaults",
            tree.name()
        ));
    }
    let mut shown = ConfigShown {
        app: tree.name().to_owned(),
        file: path.display().to_string(),
        exists: existing.is_some(),
        values: BTreeMap::new(),
        not_set: Vec::new(),
        removed_keys: Vec::new(),
        lines: Vec::new(),
    };
    let lines = &mut shown.lines;
    for field in &spec.fields {
        let key = field.key.as_str();
        match values.get(key) {
            Some(_) if field.is_secret() => {
                lines.push(format!("{key} = {MASK}"));
                shown
                    .values
                    .insert(key.to_owned(), ConfigValue::String(MASK.to_owned()));
            }
            Some(value) => {
                lines.push(format!("{key} = {value}"));
                shown.values.insert(key.to_owned(), value.clone());
            }
            None => {
                lines.push(format!("{key} = (not set)"));
                shown.not_set.push(key.to_owned());
            }
        }
    }
    for key in values.keys().filter(|key| spec.field(key).is_none()) {
        lines.push(format!(
            "{key} = {MASK} (not in this release's configuration.yaml: unused)"
        ));
        shown.removed_keys.push(key.clone());
    }
    Ok(shown)
}
