//! `pyapp-install rollback APP`: point `current` back at the release installed before the
//! current one, with that release's units (stopped, switched, rewritten, started). The
//! newer release stays on disk (installing its bundle again returns to it).

use anyhow::{Context, Result};
use serde::Serialize;

use crate::app::installed::ReleaseInfo;
use crate::app::receipt::now_rfc3339_millis;
use crate::app::receipt::Receipt;
use crate::app::release;
use crate::engine::activation::Activation;
use crate::engine::{notify, Target};
use crate::system::app_user;
use crate::system::notify::EventKind;
use crate::system::web::{self, WebConfig};
use pyapp_cli::Refusal;
use pyapp_fs::fault;
use pyapp_fs::lock::{AppLock, WhenHeld};

/// What to roll back: `pyapp-install rollback APP [--wait]`.
#[derive(Debug, Clone)]
pub struct RollbackRequest {
    pub app: String,
    /// What to do when another pyapp-install holds the app's lock.
    pub when_held: WhenHeld,
}

/// What a rollback did, as `rollback --json` prints it.
#[derive(Debug, Serialize)]
pub struct RollbackReport {
    pub action: &'static str,
    pub app: String,
    pub version: String,
    pub release: String,
    /// The release that was current before.
    pub from: String,
    pub path: String,
}

/// Switches the app back to the release installed before its current one.
pub fn rollback(request: &RollbackRequest, target: &Target) -> Result<RollbackReport> {
    let (app, apps, root, output) = (
        request.app.as_str(),
        &target.apps,
        &target.root,
        target.progress(),
    );
    let tree = apps.app(app)?;
    let not_installed = || {
        Refusal::new(format!(
            "{app} is not installed in {}",
            apps.path().display()
        ))
        .with_hint("`pyapp-install list` shows the installed apps")
    };
    if !pyapp_fs::is_real_dir(&tree.state_dir())? {
        return Err(not_installed().into());
    }
    let _lock = AppLock::acquire(&tree.lock_path(), app, request.when_held)?;
    let receipt = Receipt::load(&tree.receipt_path())?.ok_or_else(not_installed)?;
    release::remove_stale_staging(&tree)?;
    // An install killed between its switch and its receipt: the release it switched to
    // is the current one, and the one before it where this goes back to.
    let receipt = release::completed_receipt(&tree, receipt)?;
    // Start from what `current` really points at (a crash may have come between the
    // switch and the receipt).
    let current = release::current_release(&tree)?.unwrap_or_else(|| receipt.release.clone());
    // A rollback killed after its switch left `current` at the receipt's previous release:
    // that rollback is finished (its units written, its receipt saved), not repeated.
    let interrupted = receipt.previous().is_some_and(|r| r.release == current);
    let current = if interrupted {
        receipt.release.clone()
    } else {
        current
    };
    let current_record = receipt
        .releases
        .iter()
        .find(|r| r.release == current)
        .ok_or_else(|| {
            Refusal::new(format!(
                "{app}'s current release {current} is not in its receipt"
            ))
            .with_hint("install the bundle you want to run again")
        })?;
    let receipt = receipt.switched_to(current_record);
    let previous = receipt.previous().ok_or_else(|| {
        Refusal::new(format!(
            "{app} has no release older than {current} to roll back to"
        ))
        .with_hint("install the bundle of the version you want instead")
    })?;
    if !pyapp_fs::is_real_dir(&tree.release_dir(&previous.release))? {
        return Err(Refusal::new(format!(
            "{app}'s previous release {} is no longer on disk",
            previous.release
        ))
        .with_hint("install the bundle of the version you want instead")
        .into());
    }
    let older = ReleaseInfo::load(&tree, &previous.release, &previous.python)?;
    let user = app_user::user_of(root, &receipt)?;
    let site = web::Site::of(&tree, &older.metadata)?;
    let activation = Activation {
        apps,
        tree: &tree,
        systemd: target.systemd.clone(),
        user: user.as_ref(),
        port_range: target.port_range,
        output,
    };
    let started_at = now_rfc3339_millis();
    let failed = |err: &anyhow::Error| {
        let release = (older.metadata.version.to_string(), older.release.clone());
        let kind = EventKind::RollbackFailed;
        notify::activation_failed(
            target,
            &tree,
            kind,
            (&release.0, &release.1),
            &started_at,
            err,
        );
    };
    if activation.can_hand_over(&older)? {
        // The same handover as an upgrade: the older release is health-checked beside the
        // running one before it takes the traffic; a failed check leaves things as they were.
        let newer = ReleaseInfo::load(&tree, &current, &current_record.python)?;
        let units = activation.units_now(&older)?;
        release::switch_current(&tree, &older.release)?;
        if let Err(err) = activation.hand_over(&older, &units, &[]) {
            activation.undo_switch(&newer)?;
            let err = err.context(format!(
                "{app} was not rolled back, {} keeps running",
                newer.metadata.version
            ));
            failed(&err);
            return Err(err);
        }
    } else {
        activation.revert_to(Some(&older)).inspect_err(failed)?;
    }
    let rolled = receipt.switched_to(previous);
    fault::point("rollback-before-receipt");
    rolled.save(&tree.receipt_path())?;
    WebConfig {
        root,
        tree: &tree,
        systemd: &activation.systemd,
        output,
    }
    .publish(site.as_ref(), None)
    .with_context(|| format!("{app} was rolled back to {}", rolled.version))?;

    output.note(&format!(
        "rolled back {app} to {} (release {}, was {current})",
        rolled.version, rolled.release
    ));
    Ok(RollbackReport {
        action: "rolled-back",
        app: app.to_owned(),
        version: rolled.version.clone(),
        release: rolled.release.clone(),
        from: current,
        path: tree.dir().display().to_string(),
    })
}
