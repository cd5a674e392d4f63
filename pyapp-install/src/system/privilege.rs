//! Starting a child process as the app user (or as no one): a new session (no controlling
//! terminal), no new privileges, then setgroups, setgid, setuid in that order (FORMAT.md
//! 6.2), and, for a child this process waits for, death with it. std's
//! `CommandExt::uid`/`gid` use another order and keep the session, hence `pre_exec`: the
//! only `unsafe` code of the workspace, kept to one function (`confine`).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

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
