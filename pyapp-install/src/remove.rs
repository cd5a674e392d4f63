//! `pyapp-install remove APP [--purge]`: run the app's pre-delete hook, stop and remove its
//! units, unlink it from web servers, and take its releases, `current`, web/, tmp/, run/
//! and receipt away. config/, data/ and log/ stay (a later install finds them) unless --purge,
//! which deletes the app's whole directory. Then the store entries no other app uses go.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::activation::{Activation, ReleaseInfo};
use crate::app_tree::AppsDir;
use crate::app_user;
use crate::fault;
use crate::hooks::HookName;
use crate::lock::{AppLock, WhenHeld};
use crate::output::Output;
use crate::ports::PortRange;
use crate::receipt::Receipt;
use crate::refusal::Refusal;
use crate::release;
use crate::safe_fs;
use crate::store;
use crate::systemd::Systemd;
use crate::web::WebConfig;

/// What `remove --json` prints.
#[derive(Debug, Serialize)]
struct Removed<'a> {
    action: &'static str,
    app: &'a str,
    path: String,
    kept: Vec<&'static str>,
}

/// The `remove` action.
pub fn remove(
    root: &Path,
    apps: &AppsDir,
    app: &str,
    purge: bool,
    port_range: PortRange,
    when_held: WhenHeld,
    output: &Output,
) -> Result<()> {
    let tree = apps.app(app)?;
    let installed = safe_fs::exists(&tree.receipt_path())?;
    let leftovers = safe_fs::is_real_dir(tree.dir())?;
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
    safe_fs::ensure_dir(&tree.state_dir(), 0o755)?;
    let _lock = AppLock::acquire(&tree.lock_path(), app, when_held)?;

    // The app's pre-delete hook, then its units: stopped, removed, systemd reloaded.
    let systemd = Systemd::detect(root);
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
            port_range,
            output,
        };
        activation.hook(HookName::PreDelete, &info)?;
    }
    let units = systemd.installed_units(app)?;
    systemd.stop(&units)?;
    if !systemd.remove_units(app)?.is_empty() {
        systemd.daemon_reload()?;
    }
    WebConfig {
        root,
        tree: &tree,
        systemd: &systemd,
        output,
    }
    .unpublish()?;

    fault::point("remove-after-units");

    // `current` first: from then on nothing runs from a half-removed release. Then the
    // releases, each renamed away before it is deleted (none is ever left half there for
    // an install to reuse), even for --purge. The receipt last: a crash in between leaves
    // an app that `remove` still knows.
    safe_fs::remove_file_if_exists(&tree.current_link())?;
    safe_fs::sync_dir(tree.dir())?;
    fault::point("remove-after-current");
    release::remove_all(&tree)?;
    let kept = if purge {
        safe_fs::remove_dir_all_if_exists(tree.dir())?;
        Vec::new()
    } else {
        safe_fs::remove_dir_all_if_exists(&tree.lasting_dir("tmp"))?;
        safe_fs::remove_dir_all_if_exists(&tree.lasting_dir("run"))?;
        fault::point("remove-before-receipt");
        safe_fs::remove_file_if_exists(&tree.receipt_path())?;
        safe_fs::sync_dir(&tree.state_dir())?;
        vec!["config", "data", "log"]
    };
    store::collect_after(apps, output);

    if output.json() {
        output.print_json(&Removed {
            action: if purge { "purged" } else { "removed" },
            app,
            path: tree.dir().display().to_string(),
            kept: kept.clone(),
        })?;
    }
    if kept.is_empty() {
        output.note(format!("removed {app} and all its files"));
    } else {
        output.note(format!(
            "removed {app}; kept {} in {}",
            kept.join(", "),
            tree.dir().display()
        ));
    }
    Ok(())
}
