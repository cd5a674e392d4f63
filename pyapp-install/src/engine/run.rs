//! `pyapp-install run APP SERVICE`: run one service of the current release in the
//! foreground exactly as its unit would (same user, environment, working directory and
//! command), for containers and machines without systemd. pyapp-install replaces itself
//! with the service's process, so signals reach the service directly.

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use anyhow::Result;

use crate::app::installed::ReleaseInfo;
use crate::app::receipt::Receipt;
use crate::app::release;
use crate::engine::activation::Activation;
use crate::engine::Target;
use crate::system::app_user;
use crate::system::privilege::exec_as;
use pyapp_cli::Refusal;

/// What to run: `pyapp-install run APP SERVICE`.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub app: String,
    /// The service's name in the app's metadata.yaml.
    pub service: String,
}

/// Replaces this process with the service's; returns only if it could not be started.
pub fn run(request: &RunRequest, target: &Target) -> Result<()> {
    let (app, service, apps, output) = (
        request.app.as_str(),
        request.service.as_str(),
        &target.apps,
        target.progress(),
    );
    let tree = apps.app(app)?;
    if tree.dir() != tree.runtime_dir() {
        return Err(Refusal::new(format!(
            "run starts {app} from {}, which exists only when installing into / (not under --root)",
            tree.runtime_dir().display()
        ))
        .into());
    }
    let not_installed = || {
        Refusal::new(format!(
            "{app} is not installed in {}",
            apps.path().display()
        ))
        .with_hint("`pyapp-install list` shows the installed apps")
    };
    let receipt = Receipt::load(&tree.receipt_path())?.ok_or_else(not_installed)?;
    let current = release::current_release(&tree)?.ok_or_else(not_installed)?;
    let info = ReleaseInfo::of_receipt(&tree, &receipt, &current)?;
    let user = app_user::user_of(&target.root, &receipt)?.ok_or_else(|| {
        Refusal::new(format!(
            "{app} has no app user to run as (services never run as root)"
        ))
        .with_hint("install the app into / so that its user is created")
    })?;
    let activation = Activation {
        apps,
        tree: &tree,
        systemd: target.systemd.clone(),
        user: Some(&user),
        port_range: target.port_range,
        output,
    };
    let process = activation.service_process(&info, service)?;
    let Some((program, args)) = process.argv.split_first() else {
        return Err(Refusal::new(format!("{app} {service}: empty command")).into());
    };
    output.note(&format!(
        "running {app} {service} as {}: {}",
        user.name,
        process.argv.join(" ")
    ));
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(process.environment.vars())
        .current_dir(tree.lasting_dir("data"))
        .stdin(Stdio::null());
    exec_as(&mut command, (user.uid, user.gid));
    let err = command.exec();
    Err(anyhow::Error::new(err).context(format!("failed to start `{program}`")))
}
