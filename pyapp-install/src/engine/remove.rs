//! `pyapp-install remove APP [--purge]`: run the app's pre-delete hook, stop and remove its
//! units, unlink it from web servers, and take its releases, `current`, web/, tmp/, run/
//! and receipt away. config/, data/ and log/ stay (a later install finds them) unless --purge,
//! which deletes the app's whole directory. Then the store entries no other app uses go.

use anyhow::Result;
use serde::Serialize;

use crate::app::installed::ReleaseInfo;
use crate::app::receipt::Receipt;
use crate::app::release;
use crate::engine::activation::Activation;
use crate::engine::gc;
use crate::engine::notify;
use crate::engine::Target;
use crate::system::app_user;
use crate::system::hooks::HookName;
use crate::system::notify::EventKind;
use crate::system::web::WebConfig;
use pyapp_cli::Refusal;
use pyapp_fs::fault;
use pyapp_fs::lock::{AppLock, WhenHeld};

/// What to remove: `pyapp-install remove APP [--purge] [--wait]`.
#[derive(Debug, Clone)]
pub struct RemoveRequest {
    pub app: String,
    /// Delete the app's whole directory, config/, data/ and log/ too.
    pub purge: bool,
    /// What to do when another pyapp-install holds the app's lock.
    pub when_held: WhenHeld,
}

/// What a removal did, as `remove --json` prints it.
#[derive(Debug, Serialize)]
pub struct RemoveReport {
    pub action: &'static str,
    pub app: String,
    pub path: String,
    /// The directories left in place.
    pub kept: Vec<&'static str>,
}

/// Removes the app: its hook, units, web server links, releases and receipt.
pub fn remove(request: &RemoveRequest, target: &Target) -> Result<RemoveReport> {
    let (app, purge, apps, root, output) = (
        request.app.as_str(),
        request.purge,
        &target.apps,
        &target.root,
        target.progress(),
    );
    let tree = apps.app(app)?;
    let installed = pyapp_fs::exists(&tree.receipt_path())?;
    let leftovers = pyapp_fs::is_real_dir(tree.dir())?;
    let something_to_remove = installed || (purge && leftovers);
    if !something_to_remove {
        let refusal = Refusal::new(format!(
            "{app} is not installed in {}",
            apps.path().display()
        ));
        let hint = if leftovers {
            format!(
                "`pyapp-install remove --purge {app}` deletes what is left in {}",
                tree.dir().display()
            )
        } else {
            "`pyapp-install list` shows the installed apps".to_owned()
        };
        return Err(refusal.with_hint(hint).into());
    }
    pyapp_fs::ensure_dir(&tree.state_dir(), 0o755)?;
    let _lock = AppLock::acquire(&tree.lock_path(), app, request.when_held)?;

    // The app's pre-delete hook, then its units: stopped, removed, systemd reloaded.
    let systemd = &target.systemd;
    if let (Some(receipt), Some(current)) = (
        Receipt::load(&tree.receipt_path())?,
        release::current_release(&tree)?,
    ) {
        let user = app_user::user_of(root, &receipt)?;
        let info = ReleaseInfo::of_receipt(&tree, &receipt, &current)?;
        let activation = Activation {
            apps,
            tree: &tree,
            systemd: systemd.clone(),
            user: user.as_ref(),
            port_range: target.port_range,
            output,
        };
        activation
            .hook(HookName::PreDelete, &info)
            .inspect_err(|err| {
                notify::running_release_failed(
                    target,
                    &tree,
                    (EventKind::HookFailed, Some(HookName::PreDelete)),
                    &info,
                    err,
                )
            })?;
    }
    let units = systemd.installed_units(app)?;
    systemd.stop(&units)?;
    if !systemd.remove_units(app)?.is_empty() {
        systemd.daemon_reload()?;
    }
    WebConfig {
        root,
        tree: &tree,
        systemd,
        output,
    }
    .unpublish()?;

    fault::point("remove-after-units");

    // `current` first: from then on nothing runs from a half-removed release. Then the
    // releases, each renamed away before it is deleted (none is ever left half there for
    // an install to reuse), even for --purge. The receipt last: a crash in between leaves
    // an app that `remove` still knows.
    pyapp_fs::remove_file_if_exists(&tree.current_link())?;
    pyapp_fs::sync_dir(tree.dir())?;
    fault::point("remove-after-current");
    release::remove_all(&tree)?;
    let kept = if purge {
        pyapp_fs::remove_dir_all_if_exists(tree.dir())?;
        Vec::new()
    } else {
        pyapp_fs::remove_dir_all_if_exists(&tree.lasting_dir("tmp"))?;
        pyapp_fs::remove_dir_all_if_exists(&tree.lasting_dir("run"))?;
        fault::point("remove-before-receipt");
        pyapp_fs::remove_file_if_exists(&tree.environment_file())?;
        pyapp_fs::remove_file_if_exists(&tree.receipt_path())?;
        pyapp_fs::sync_dir(&tree.state_dir())?;
        vec!["config", "data", "log"]
    };
    gc::collect_after(apps, output);

    if kept.is_empty() {
        output.note(&format!("removed {app} and all its files"));
    } else {
        output.note(&format!(
            "removed {app}; kept {} in {}",
            kept.join(", "),
            tree.dir().display()
        ));
    }
    Ok(RemoveReport {
        action: if purge { "purged" } else { "removed" },
        app: app.to_owned(),
        path: tree.dir().display().to_string(),
        kept,
    })
}
