//! Starting a child process as the app user (or as no one): a new session (no controlling
//! terminal), no new privileges, then setgroups, setgid, setuid in that order (FORMAT.md
//! 6.2), and, for a child this process waits for, death with it. std's
//! `CommandExt::uid`/`gid` use another order and keep the session, hence `pre_exec`: one
//! of the workspace's two `unsafe` blocks (the other is pyapp-fs's `sync_file_range`), kept
//! to one function (`confine`).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};

use nix::sys::signal::Signal;
use nix::unistd::{getppid, setgid, setgroups, setsid, setuid, Gid, Pid, Uid};

/// The overflow user and group (`nobody`/`nogroup` on Debian): owner of no file, for
/// children that need no access to anything but what they are handed.
const NOBODY: (u32, u32) = (65534, 65534);

/// Makes `command`, when spawned, run in a new session of its own (so its process group
/// is its pid and it has no controlling terminal), unable to gain privileges (setuid
/// binaries, file capabilities), as `user` (`(uid, gid)`, with `gid` as its only group),
/// and killed (SIGKILL) when the thread that spawned it ends: a pyapp-install that is
/// killed leaves no hook or compiler running. Any step failing makes the spawn fail.
pub fn spawn_as(command: &mut Command, user: (u32, u32)) {
    confine(command, Some(user), Some(Pid::this()));
}

/// [`spawn_as`] the overflow user `nobody`: for the bytecode compiler, which reads
/// sources from its stdin and writes bytecode to its stdout. Run by another user than
/// root, it stays that user (it has no privileges to drop, nor the right to).
pub fn spawn_as_nobody(command: &mut Command) {
    let user = Uid::effective().is_root().then_some(NOBODY);
    confine(command, user, Some(Pid::this()));
}

/// [`spawn_as`] for a command that replaces this process (`Command::exec`): it outlives
/// its parent, the shell that started pyapp-install.
pub fn exec_as(command: &mut Command, user: (u32, u32)) {
    confine(command, Some(user), None);
}

/// Kills the process group `pgid` (a hook's: its pid) with SIGKILL should this process
/// die before the guard is dropped, however it dies: processes the hook started, which
/// `PR_SET_PDEATHSIG` does not reach, go with it. The guard is a `/bin/sh` that waits for
/// the end of a pipe only this process holds (close-on-exec: the hook has no copy).
/// Dropping it ends the guard without a kill: the caller has dealt with the group.
pub struct GroupGuard {
    guard: Child,
    _pipe: ChildStdin,
}

impl GroupGuard {
    /// Starts the guard of the process group `pgid`.
    pub fn start(pgid: u32) -> io::Result<GroupGuard> {
        let mut guard = Command::new("/bin/sh")
            .args(["-c", r#"read -r _; kill -9 -"$1""#, "pyapp-install-guard"])
            .arg(pgid.to_string())
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let Some(pipe) = guard.stdin.take() else {
            let _ = guard.kill();
            let _ = guard.wait();
            return Err(io::Error::other("the guard's stdin was not set up"));
        };
        Ok(GroupGuard { guard, _pipe: pipe })
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // Killed before its pipe closes (fields drop after this), so it never signals.
        let _ = self.guard.kill();
        let _ = self.guard.wait();
    }
}

/// The `pre_exec` of [`spawn_as`] and [`exec_as`]: `user`, when given, is who the child
/// becomes; `parent`, when the child must die with it, is this process, the one the child
/// checks it still has after asking for the signal (it may have died before).
#[allow(unsafe_code)]
fn confine(command: &mut Command, user: Option<(u32, u32)>, parent: Option<Pid>) {
    let ids = user.map(|(uid, gid)| (Uid::from_raw(uid), Gid::from_raw(gid)));
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed. It only makes raw syscalls through nix
    // (setsid, prctl, setgroups on a one-element array on the stack, setgid, setuid,
    // getppid), reads values copied into it before the fork, and builds its error from a
    // raw errno: it takes no lock and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            setsid()?;
            nix::sys::prctl::set_no_new_privs()?;
            if let Some((uid, gid)) = ids {
                setgroups(&[gid])?;
                setgid(gid)?;
                setuid(uid)?;
            }
            // After setuid, which clears the parent-death signal.
            if let Some(parent) = parent {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                if getppid() != parent {
                    return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
                }
            }
            Ok(())
        });
    }
}
