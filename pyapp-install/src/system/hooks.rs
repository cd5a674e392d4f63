//! The hooks of metadata.yaml (post-install, pre-update, post-update, pre-delete), run as
//! FORMAT.md 6.3 says: the release venv's program, the app's environment and nothing
//! else, in `data/`, as the app user in a session of its own, with a timeout. Their
//! output goes to stderr, line by line, and to `log/hooks.log`; how each one ended, to
//! `.pyapp/hooks.json` ([`crate::app::hook_results`]).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::signal::{killpg, Signal};
use nix::sys::stat::{fchmod, fstat, Mode, SFlag};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{fchown, Gid, Pid, Uid};
use pyapp_bundle::command::{Command, Placeholder, PlaceholderValues};
use pyapp_bundle::metadata::Hooks;

use crate::app::env::AppEnvironment;
use crate::app::hook_results::{self, HookEnd, HookResult};
use crate::app::receipt::now_rfc3339_millis;
use crate::app::tree::AppTree;
use crate::progress::Progress;
use crate::system::app_user::AppUser;
use crate::system::ownership::{open_dir, open_dir_at};
use crate::system::privilege::{spawn_as, GroupGuard};
use pyapp_cli::Refusal;

/// The hooks' log, in `log/`.
pub const HOOK_LOG: &str = "hooks.log";

/// The mode of [`HOOK_LOG`]: the app user reads and writes it, its group reads it.
const HOOK_LOG_MODE: u32 = 0o640;

/// How long a hook has after SIGTERM (at its timeout) before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How long to wait for the end of a finished hook's output, which a process that left
/// the hook's process group may hold open.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// How often the hook's lines are passed on while it runs.
const LINE_POLL: Duration = Duration::from_millis(50);

/// How often a running hook is checked on.
const POLL: Duration = Duration::from_millis(20);

/// A line of output longer than this is cut into pieces of this size.
const MAX_LINE: usize = 16 * 1024;

/// One of the four hooks, or the health check's command, which runs the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookName {
    PostInstall,
    PreUpdate,
    PostUpdate,
    PreDelete,
    HealthCheck,
}

impl HookName {
    /// The name as metadata.yaml writes it: `post-install`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookName::PostInstall => "post-install",
            HookName::PreUpdate => "pre-update",
            HookName::PostUpdate => "post-update",
            HookName::PreDelete => "pre-delete",
            HookName::HealthCheck => "health-check",
        }
    }

    /// This hook's command in `hooks`, if the app has one (the health check's command is
    /// not a hook's: it is in `update.health-check`).
    pub fn command(self, hooks: &Hooks) -> Option<&Command> {
        match self {
            HookName::PostInstall => hooks.post_install.as_ref(),
            HookName::PreUpdate => hooks.pre_update.as_ref(),
            HookName::PostUpdate => hooks.post_update.as_ref(),
            HookName::PreDelete => hooks.pre_delete.as_ref(),
            HookName::HealthCheck => None,
        }
    }
}

impl fmt::Display for HookName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and how a hook runs.
#[derive(Debug, Clone)]
pub struct HookContext<'a> {
    pub tree: &'a AppTree,
    /// The app user; `None` only where hooks are skipped anyway (a `--root` scratch tree).
    pub user: Option<&'a AppUser>,
    /// The hook's whole environment (FORMAT.md 7), `VIRTUAL_ENV` naming this release's venv.
    pub env: AppEnvironment,
    /// The release whose venv and source the hook uses (for pre-update, the new release),
    /// its version, and its directory as a run-time path: `APPS/APP/releases/RELEASE`.
    pub release: String,
    pub version: String,
    pub release_dir: PathBuf,
    /// `hooks.timeout` of the metadata.
    pub timeout: Duration,
    /// The values of `{mount}` and `{config.KEY}`; none unless set.
    pub app_values: PlaceholderValues,
}

impl<'a> HookContext<'a> {
    /// The context of a hook of `release` (a name under `releases/`) at `version`, with
    /// the configuration file at `config_file` (run-time path) and `hooks.timeout`.
    pub fn for_release(
        tree: &'a AppTree,
        user: Option<&'a AppUser>,
        version: &str,
        release: &str,
        config_file: &Path,
        timeout_seconds: u32,
    ) -> HookContext<'a> {
        let release_dir = tree.runtime_release_dir(release);
        let env = AppEnvironment::new(tree, version, &release_dir.join("venv"), config_file);
        HookContext {
            tree,
            user,
            env,
            release: release.to_owned(),
            version: version.to_owned(),
            release_dir,
            timeout: Duration::from_secs(u64::from(timeout_seconds)),
            app_values: PlaceholderValues::new(),
        }
    }
}

/// What became of a hook that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// It ran and exited with status 0.
    Succeeded,
    /// It was not run: the tree is staged under `--root`, where its paths do not exist.
    Skipped,
}

/// Runs `hook` (whose command is `command`) as FORMAT.md 6.3 says. A hook that exits with
/// another status than 0, is killed by a signal or times out is a [`Refusal`] (exit 1:
/// the bundle's fault) naming the hook: `hook pre-update failed (exit status 3)`,
/// `hook post-update timed out after 120 s`.
pub fn run_hook(
    hook: HookName,
    command: &Command,
    ctx: &HookContext,
    output: &dyn Progress,
) -> Result<HookOutcome> {
    let written = command.written().join(" ");
    if ctx.tree.dir() != ctx.tree.runtime_dir() {
        output.note(&format!(
            "skipped hook {hook} ({written}): hooks run only when installing into / (under --root its paths do not exist on this machine)"
        ));
        return Ok(HookOutcome::Skipped);
    }
    let user = ctx.user.with_context(|| {
        format!("hook {hook}: no app user to run it as (hooks never run as root)")
    })?;
    let argv = render(hook, command, ctx)?;
    let program = resolve_program(hook, &argv[0], &ctx.release_dir)?;
    let data = ctx.tree.lasting_dir("data");
    let mut log = open_hook_log(ctx.tree, user)?;
    let log_path = ctx.tree.lasting_dir("log").join(HOOK_LOG);
    log::debug!("hook {hook} as {}: {}", user.name, argv.join(" "));
    let started_at = now_rfc3339_millis();
    writeln!(log, "=== {started_at} hook {hook}: {}", argv.join(" "))
        .with_context(|| format!("failed to write `{}`", log_path.display()))?;

    let (reader, writer) = io::pipe().context("failed to create a pipe for the hook's output")?;
    let mut child = {
        let mut process = std::process::Command::new(&program);
        process
            .args(&argv[1..])
            .env_clear()
            .envs(ctx.env.vars())
            .current_dir(&data)
            .stdin(Stdio::null())
            .stdout(
                writer
                    .try_clone()
                    .context("failed to duplicate the hook's output pipe")?,
            )
            .stderr(writer);
        spawn_as(&mut process, (user.uid, user.gid));
        process
            .spawn()
            .map_err(|err| spawn_error(hook, &program, user, err))?
        // `process`, holding the pipe's writing end, is dropped here: the reader sees the
        // end of the output when the hook and its children are done.
    };
    // Killed with its children should this process be killed while it runs.
    let _group = GroupGuard::start(child.id())
        .map_err(|err| {
            output.warning(&format!(
                "hook {hook}: no guard of its process group (its children would outlive a killed pyapp-install): {err}"
            ))
        })
        .ok();
    let copy_log = log
        .try_clone()
        .with_context(|| format!("failed to reopen `{}`", log_path.display()))?;
    // The copying thread may outlive this call (a process that left the hook's group can
    // hold the pipe open): it owns what it uses and hands each line over to be shown here.
    let (line_tx, line_rx) = mpsc::channel();
    let prefix = format!("hook {hook}: ");
    std::thread::spawn(move || copy_lines(reader, copy_log, &prefix, &line_tx));

    let started = Instant::now();
    let ended = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| wait_or_kill(&mut child, ctx.timeout));
        while !waiting.is_finished() {
            if let Ok(line) = line_rx.recv_timeout(LINE_POLL) {
                output.note(&line);
            }
        }
        waiting
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
    .with_context(|| format!("failed to wait for hook {hook}"))?;
    let drained_by = Instant::now() + OUTPUT_DRAIN;
    while let Some(left) = drained_by.checked_duration_since(Instant::now()) {
        match line_rx.recv_timeout(left) {
            Ok(line) => output.note(&line),
            Err(_) => break,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (end, exit_status, signal) = match ended {
        Ended::TimedOut => (HookEnd::TimedOut, None, None),
        Ended::Exited(status) => {
            let code = status.code();
            let signal = std::os::unix::process::ExitStatusExt::signal(&status);
            let end = if code == Some(0) {
                HookEnd::Succeeded
            } else {
                HookEnd::Failed
            };
            (end, code, signal)
        }
    };
    let verdict = match (end, exit_status, signal) {
        (HookEnd::TimedOut, ..) => format!("timed out after {} s", ctx.timeout.as_secs()),
        (HookEnd::Succeeded, ..) => String::new(),
        (_, Some(code), _) => format!("failed (exit status {code})"),
        (_, None, Some(signal)) => format!("failed (killed by signal {signal})"),
        (_, None, None) => "failed".to_owned(),
    };
    let result = HookResult {
        release: ctx.release.clone(),
        version: ctx.version.clone(),
        started_at,
        duration_seconds: (elapsed * 1000.0).round() / 1000.0,
        result: end,
        exit_status,
        signal,
    };
    if let Err(err) = hook_results::record(ctx.tree, hook.as_str(), result) {
        // The hook's outcome does not depend on its record; the log has it too.
        output.note(&format!(
            "warning: the result of hook {hook} was not recorded: {err:#}"
        ));
    }
    let summary = if verdict.is_empty() {
        "exit status 0".to_owned()
    } else {
        verdict.clone()
    };
    writeln!(
        log,
        "=== {} hook {hook}: {summary} after {elapsed:.1} s",
        now_rfc3339_millis()
    )
    .with_context(|| format!("failed to write `{}`", log_path.display()))?;
    if verdict.is_empty() {
        return Ok(HookOutcome::Succeeded);
    }
    Err(Refusal::new(format!("hook {hook} {verdict}"))
        .with_hint(format!(
            "its output is above and in `{}`; the command was `{written}` from metadata.yaml",
            log_path.display()
        ))
        .into())
}

/// The command's arguments with the placeholders of hooks filled in (run-time paths).
fn render(hook: HookName, command: &Command, ctx: &HookContext) -> Result<Vec<String>> {
    let app = ctx.tree.runtime_dir();
    let config = ctx
        .env
        .vars()
        .get("PYAPP_CONFIG_FILE")
        .with_context(|| format!("hook {hook}: the environment has no PYAPP_CONFIG_FILE"))?;
    let path = |p: PathBuf| p.display().to_string();
    let mut values = PlaceholderValues::from([
        (Placeholder::App, path(app.to_path_buf())),
        (Placeholder::Data, path(app.join("data"))),
        (Placeholder::Tmp, path(app.join("tmp"))),
        (Placeholder::Run, path(app.join("run"))),
        (Placeholder::Log, path(app.join("log"))),
        (Placeholder::Config, config.clone()),
        (Placeholder::Venv, path(ctx.release_dir.join("venv"))),
        (Placeholder::Src, path(ctx.release_dir.join("src"))),
    ]);
    values.extend(&ctx.app_values);
    command.render(&values).map_err(|err| {
        Refusal::new(format!("hook {hook}: {err}"))
            .with_hint("fix the hook's command in metadata.yaml and rebuild the bundle")
            .into()
    })
}

/// A hook that cannot be started. The app user lacking access to the program or to its
/// interpreter (a venv built on a Python under `/root`) is the user's to fix (exit 1).
fn spawn_error(hook: HookName, program: &Path, user: &AppUser, err: io::Error) -> anyhow::Error {
    if err.kind() == io::ErrorKind::PermissionDenied {
        return Refusal::new(format!(
            "hook {hook}: the app user {} cannot run `{}`: {err}",
            user.name,
            program.display()
        ))
        .with_hint(
            "the program and the venv's interpreter must be readable by the app user; \
             a Python under a private home (pyenv in /root) is not: install with --python /usr/bin/python3.X",
        )
        .into();
    }
    anyhow::Error::new(err).context(format!(
        "failed to start hook {hook} (`{}`)",
        program.display()
    ))
}

/// An absolute program as it is; a bare name from the release venv's `bin/`, which
/// must have it.
fn resolve_program(hook: HookName, program: &str, release_dir: &Path) -> Result<PathBuf> {
    if program.starts_with('/') {
        return Ok(PathBuf::from(program));
    }
    let bin = release_dir.join("venv/bin");
    let path = bin.join(program);
    if path.exists() {
        return Ok(path);
    }
    Err(Refusal::new(format!(
        "hook {hook}: `{program}` is not a program of the app's venv (`{}`)",
        bin.display()
    ))
    .with_hint("hook programs are console scripts of the bundle's wheels, or absolute paths")
    .into())
}

/// Opens `log/hooks.log` to append to it, creating it owned by the app user with mode
/// 0640. `log/` belongs to the app user, so a link, a FIFO or a hard link planted there
/// is refused rather than followed, written to or chowned.
fn open_hook_log(tree: &AppTree, user: &AppUser) -> Result<File> {
    let log_dir_path = tree.lasting_dir("log");
    let path = log_dir_path.join(HOOK_LOG);
    let app_dir = open_dir(tree.dir())?;
    let log_dir = open_dir_at(&app_dir, "log", &log_dir_path)?;
    let flags = OFlag::O_WRONLY
        | OFlag::O_APPEND
        | OFlag::O_CREAT
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC;
    let mode = Mode::from_bits_truncate(HOOK_LOG_MODE);
    let refuse = |what: &str| -> anyhow::Error {
        Refusal::new(format!(
            "`{}` is {what}; refusing to write to it",
            path.display()
        ))
        .with_hint("move it away (it may have been planted), then run pyapp-install again")
        .into()
    };
    let fd = openat(&log_dir, HOOK_LOG, flags, mode).map_err(|err| match err {
        Errno::ELOOP => refuse("a symbolic link"),
        err => anyhow::Error::new(err).context(format!("failed to open `{}`", path.display())),
    })?;
    let stat = fstat(&fd).with_context(|| format!("failed to inspect `{}`", path.display()))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(refuse("not a regular file"));
    }
    if stat.st_nlink != 1 {
        return Err(refuse("a file with other hard links"));
    }
    if stat.st_uid != user.uid || stat.st_gid != user.gid {
        fchown(
            &fd,
            Some(Uid::from_raw(user.uid)),
            Some(Gid::from_raw(user.gid)),
        )
        .with_context(|| format!("failed to change the owner of `{}`", path.display()))?;
    }
    if stat.st_mode & 0o7777 != HOOK_LOG_MODE {
        fchmod(&fd, mode)
            .with_context(|| format!("failed to set the mode of `{}`", path.display()))?;
    }
    Ok(File::from(fd))
}

/// Copies the hook's output, line by line, to stderr (each line after `prefix`) and to
/// the log, until the last writer closes the pipe. Errors writing the log are ignored:
/// the hook's outcome does not depend on its log.
fn copy_lines(mut reader: impl Read, mut log: File, prefix: &str, lines: &mpsc::Sender<String>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut emit = |line: &[u8]| {
        let _ = lines.send(format!("{prefix}{}", String::from_utf8_lossy(line)));
        let _ = log.write_all(line).and_then(|()| log.write_all(b"\n"));
    };
    let mut buffer = [0u8; 8192];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&buffer[..read]);
        while let Some(newline) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=newline).collect();
            emit(&line[..line.len() - 1]);
        }
        while pending.len() >= MAX_LINE {
            let line: Vec<u8> = pending.drain(..MAX_LINE).collect();
            emit(&line);
        }
    }
    if !pending.is_empty() {
        emit(&pending);
    }
}

/// How a hook's process ended.
enum Ended {
    Exited(std::process::ExitStatus),
    TimedOut,
}

/// Waits for `child` (the leader of its own process group) until `timeout`; then sends
/// SIGTERM to the group, and SIGKILL after [`KILL_GRACE`]. Processes the hook leaves
/// behind in its group are killed when it exits. The child is reaped only after the
/// group is signalled, so its pid (the group's id) cannot have been reused.
fn wait_or_kill(child: &mut Child, timeout: Duration) -> Result<Ended> {
    let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
    let timed_out = !wait_until(pid, Instant::now() + timeout)?;
    if timed_out {
        signal_group(pid, Signal::SIGTERM)?;
        wait_until(pid, Instant::now() + KILL_GRACE)?;
    }
    signal_group(pid, Signal::SIGKILL)?;
    if timed_out {
        // The leader itself, should it not lead its group.
        child.kill().context("failed to kill the hook")?;
    }
    let status = child.wait().context("failed to reap the hook")?;
    Ok(if timed_out {
        Ended::TimedOut
    } else {
        Ended::Exited(status)
    })
}

/// Whether `pid` exited before `deadline` (it is left to be reaped).
fn wait_until(pid: Pid, deadline: Instant) -> Result<bool> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err).context("waitid failed"),
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// Sends `signal` to the process group `pgid`; a group already gone is fine.
fn signal_group(pgid: Pid, signal: Signal) -> Result<()> {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(err) => Err(err).with_context(|| format!("failed to send {signal} to the hook")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::app::tree::{AppsDir, LASTING_DIRS};
    use crate::progress::Silent;
    use pyapp_cli::find_refusal;
    use std::os::unix::fs::MetadataExt;

    fn tree(root: &Path) -> AppTree {
        let tree = AppsDir::new(root, Path::new("/applications"))
            .app("hello")
            .unwrap();
        std::fs::create_dir_all(tree.dir()).unwrap();
        for (name, mode) in LASTING_DIRS {
            pyapp_fs::ensure_dir(&tree.lasting_dir(name), mode).unwrap();
        }
        tree
    }

    fn user() -> AppUser {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        AppUser {
            name: "hello".into(),
            uid,
            gid,
            home: "/applications/hello/data".into(),
        }
    }

    #[test]
    fn hooks_are_skipped_under_a_root() {
        let root = tempfile::tempdir().unwrap();
        let tree = tree(root.path());
        let ctx = HookContext::for_release(
            &tree,
            None,
            "1.0.0",
            "1.0.0-0123456789ab",
            Path::new("/applications/hello/config/config.yaml"),
            5,
        );
        let command = Command::from_line("hello-migrate").unwrap();
        let outcome = run_hook(HookName::PostInstall, &command, &ctx, &Silent).unwrap();
        assert_eq!(outcome, HookOutcome::Skipped);
        assert!(!tree.lasting_dir("log").join(HOOK_LOG).exists());
    }

    #[test]
    fn placeholders_name_run_time_paths_of_the_release() {
        let tree = AppsDir::new(Path::new("/"), Path::new("/applications"))
            .app("hello")
            .unwrap();
        let ctx = HookContext::for_release(
            &tree,
            None,
            "1.0.0",
            "1.0.0-0123456789ab",
            Path::new("/applications/hello/config/config.yaml"),
            5,
        );
        let command = Command::from_args(
            ["{venv}/bin/python", "{src}", "{data}", "{config}", "{{x}}"]
                .map(String::from)
                .to_vec(),
        )
        .unwrap();
        assert_eq!(
            render(HookName::PostInstall, &command, &ctx).unwrap(),
            [
                "/applications/hello/releases/1.0.0-0123456789ab/venv/bin/python",
                "/applications/hello/releases/1.0.0-0123456789ab/src",
                "/applications/hello/data",
                "/applications/hello/config/config.yaml",
                "{x}",
            ]
        );
        assert_eq!(
            ctx.env.vars()["VIRTUAL_ENV"],
            "/applications/hello/releases/1.0.0-0123456789ab/venv"
        );
    }

    #[test]
    fn a_program_missing_from_the_venv_is_refused() {
        let release = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(release.path().join("venv/bin")).unwrap();
        std::fs::write(release.path().join("venv/bin/tool"), "").unwrap();
        assert_eq!(
            resolve_program(HookName::PreUpdate, "tool", release.path()).unwrap(),
            release.path().join("venv/bin/tool")
        );
        assert_eq!(
            resolve_program(HookName::PreUpdate, "/bin/true", release.path()).unwrap(),
            PathBuf::from("/bin/true")
        );
        let err = resolve_program(HookName::PreUpdate, "gone", release.path()).unwrap_err();
        assert!(find_refusal(&err).is_some());
        assert!(err
            .to_string()
            .starts_with("hook pre-update: `gone` is not a program"));
    }

    #[test]
    fn a_planted_log_link_is_refused_and_its_target_untouched() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), "outside\n").unwrap();
        let before = std::fs::metadata(outside.path()).unwrap();
        let tree = tree(root.path());
        std::os::unix::fs::symlink(outside.path(), tree.lasting_dir("log").join(HOOK_LOG)).unwrap();
        let err = open_hook_log(&tree, &user()).unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        let after = std::fs::metadata(outside.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.path()).unwrap(),
            "outside\n"
        );
        assert_eq!(
            (after.uid(), after.gid(), after.mode()),
            (before.uid(), before.gid(), before.mode())
        );
    }

    #[test]
    fn a_hard_linked_log_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let tree = tree(root.path());
        let other = tree.lasting_dir("data").join("other");
        std::fs::write(&other, "x").unwrap();
        std::fs::hard_link(&other, tree.lasting_dir("log").join(HOOK_LOG)).unwrap();
        let err = open_hook_log(&tree, &user()).unwrap_err();
        assert!(err.to_string().contains("other hard links"), "{err}");
    }

    #[test]
    fn the_log_is_created_0640_and_appended_to() {
        let root = tempfile::tempdir().unwrap();
        let tree = tree(root.path());
        writeln!(open_hook_log(&tree, &user()).unwrap(), "one").unwrap();
        writeln!(open_hook_log(&tree, &user()).unwrap(), "two").unwrap();
        let path = tree.lasting_dir("log").join(HOOK_LOG);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
    }

    #[test]
    fn output_is_split_into_lines_and_long_lines_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = File::create(&path).unwrap();
        let mut text = b"first\nsecond\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE + 3));
        let (lines_tx, lines_rx) = mpsc::channel();
        copy_lines(&text[..], log, "hook x: ", &lines_tx);
        let shown: Vec<String> = lines_rx.try_iter().collect();
        assert_eq!(shown[..2], ["hook x: first", "hook x: second"]);
        let logged = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = logged.lines().collect();
        assert_eq!(lines[..2], ["first", "second"]);
        assert_eq!(lines[2].len(), MAX_LINE);
        assert_eq!(lines[3], "xxx");
    }
}
