//! Step 3: make the new release the running one (the app user, units, configuration,
//! hooks, the switch, the health check), or leave the old one running.

use std::path::PathBuf;

use anyhow::Result;

use crate::app::config_file::ConfigPlan;
use crate::app::installed::ReleaseInfo;
use crate::app::receipt::Receipt;
use crate::app::release;
use crate::app::tree::AppTree;
use crate::engine::activation::Activation;
use crate::engine::{gc, Target};
use crate::system::app_user::{self, AppUser};
use crate::system::hooks::HookName;
use crate::system::ownership;
use crate::system::web::{self, Site};
use pyapp_fs::fault;

/// The release this install built, removed (with the store entries only it used) when
/// dropped before [`NewRelease::keep`]: every early exit of the activation leaves
/// `releases/` as it was. A release that was on disk before the install is never removed.
pub struct NewRelease<'a> {
    target: &'a Target,
    tree: &'a AppTree,
    release: &'a str,
    armed: bool,
}

impl<'a> NewRelease<'a> {
    /// Guards `release` of `tree` when this install `built` it.
    pub fn guard(target: &'a Target, tree: &'a AppTree, release: &'a str, built: bool) -> Self {
        NewRelease {
            target,
            tree,
            release,
            armed: built,
        }
    }

    /// The release stays: it is current, or may be.
    fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for NewRelease<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let progress = self.target.progress();
        match release::remove_release(self.tree, self.release) {
            Ok(()) => gc::collect_after(&self.target.apps, progress),
            Err(err) => progress.warning(&format!(
                "could not remove the new release {}: {err:#}",
                self.release
            )),
        }
    }
}

/// What the activated release runs with.
pub struct Activated {
    /// The web server site of the release, published once the receipt is written.
    pub site: Option<Site>,
    /// The old releases pruned when the receipt was written.
    pub pruned: Vec<String>,
}

/// Activates `new` in place of the release `previous` records as current: the user the
/// app was installed with (or `explicit_user`), its lasting directories (`lasting`) and
/// configuration (`config`), the hooks, units and health check, then `commit` (the
/// receipt, given the app's user; it returns the releases it pruned). Any failure before
/// the switch leaves the old release running and drops `new_release`; a failure after it,
/// `commit`'s included, switches back first.
#[allow(clippy::too_many_arguments)]
pub fn activate(
    target: &Target,
    tree: &AppTree,
    previous: Option<&Receipt>,
    explicit_user: Option<&str>,
    new: &ReleaseInfo,
    lasting: &[(PathBuf, u32)],
    config: ConfigPlan,
    new_release: NewRelease,
    commit: impl FnOnce(Option<&AppUser>) -> Result<Vec<String>>,
) -> Result<Activated> {
    let progress = target.progress();
    // An upgrade keeps the user the app was installed with (`--user` is remembered).
    let remembered = previous
        .and_then(|receipt| receipt.user.as_deref())
        .filter(|name| *name != tree.name());
    let explicit = explicit_user.or(remembered);
    let user = app_user::ensure_app_user(&target.root, tree, explicit, progress)?;
    let activation = Activation {
        apps: &target.apps,
        tree,
        systemd: target.systemd.clone(),
        user: user.as_ref(),
        port_range: target.port_range,
        output: progress,
    };
    let old = match previous {
        Some(receipt) => match release::running_before(tree, receipt, &new.release)? {
            Some(current) if current != new.release => {
                Some(ReleaseInfo::of_receipt(tree, receipt, &current)?)
            }
            _ => None,
        },
        None => None,
    };
    let units = activation.units_for(new, config.values())?;
    // The web server snippets are written once the release runs, but refused now.
    let site = web::Site::of(tree, &new.metadata)?;
    for (dir, mode) in lasting {
        pyapp_fs::ensure_dir(dir, *mode)?;
    }
    if let Some(user) = &user {
        let web_groups = web::web_groups(&target.root, &new.metadata)?;
        ownership::own_lasting_dirs(
            tree,
            user,
            &new.metadata.resources.writable_dirs,
            &web_groups,
        )?;
        web::own_run_dir(&target.root, tree, user, &new.metadata, progress)?;
        web::own_data_statics(&target.root, tree, user, &new.metadata, progress)?;
    }
    for note in config.notes() {
        progress.note(&note);
    }
    config.write(user.as_ref().map(|user| (user.uid, user.gid)))?;
    fault::point("after-config");
    let version = new.version();
    if old.is_some() {
        activation.hook(HookName::PreUpdate, new).map_err(|err| {
            err.context(format!(
                "{} {version} not installed, {} keeps running",
                tree.name(),
                describe(old.as_ref())
            ))
        })?;
    }
    activation.note_restarting_services(new);
    // A handover keeps the old release serving until the new one passed its health check.
    let handover = old.is_some() && activation.can_hand_over(new)?;
    if !handover {
        activation.stop()?;
    }
    fault::point("after-stop");
    // From the switch on the new release may be current: only an undone switch removes it.
    if let Err(err) = release::switch_current(tree, &new.release) {
        new_release.keep();
        return Err(err);
    }
    fault::point("after-switch");
    let after = if old.is_some() {
        HookName::PostUpdate
    } else {
        HookName::PostInstall
    };
    // Whether the new release may have served: from then on only a full revert undoes it.
    let mut served = !handover;
    let activated = activation
        .hook(after, new)
        .and_then(|()| {
            if handover {
                activation.check_beside(new, &units)?;
                served = true;
                activation.move_traffic(new, &units, &[])
            } else {
                activation.start(new, &units)?;
                activation.check_health(new)
            }
        })
        .and_then(|()| commit(user.as_ref()));
    let pruned = match activated {
        Ok(pruned) => pruned,
        Err(err) => {
            let reverted = match (&old, !served) {
                // The old release still serves: only `current` and its units go back.
                (Some(old), true) => activation.undo_switch(old),
                _ => activation.revert_to(old.as_ref()),
            };
            if let Err(revert) = reverted {
                new_release.keep();
                return Err(revert);
            }
            return Err(err.context(format!(
                "{} {version} was rolled back, {} runs",
                tree.name(),
                describe(old.as_ref())
            )));
        }
    };
    new_release.keep();
    Ok(Activated { site, pruned })
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
