//! Starting a child process as the app user: a new session (no controlling terminal),
//! no new privileges, then setgroups, setgid, setuid in that order (FORMAT.md 6.2). std's
//! `CommandExt::uid`/`gid` use another order and keep the session, hence `pre_exec`: the
//! only `unsafe` code of the workspace, kept to this one function.

use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::unistd::{setgid, setgroups, setsid, setuid, Gid, Uid};

/// Makes `command`, when spawned, run in a new session of its own (so its process group
/// is its pid and it has no controlling terminal), unable to gain privileges (setuid
/// binaries, file capabilities), and, with `user = Some((uid, gid))`, as that user with
/// `gid` as its only group. Any step failing makes the spawn fail.
#[allow(unsafe_code)]
pub fn drop_privileges_on_spawn(command: &mut Command, user: Option<(u32, u32)>) {
    let ids = user.map(|(uid, gid)| (Uid::from_raw(uid), Gid::from_raw(gid)));
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed. It only makes raw syscalls through nix
    // (setsid, prctl, setgroups on a one-element array on the stack, setgid, setuid), reads
    // values copied into it before the fork, and builds its error from a raw errno: it
    // takes no lock and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            setsid()?;
            nix::sys::prctl::set_no_new_privs()?;
            if let Some((uid, gid)) = ids {
                setgroups(&[gid])?;
                setgid(gid)?;
                setuid(uid)?;
            }
            Ok(())
        });
    }
}
