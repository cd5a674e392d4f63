//! The app user must never become root (spec/SECURITY.md, "The app user"): under a real
//! systemd (`systemd-sandbox`), the example is installed, and then the app's own user plants
//! what it can in the directories it owns — links to files only root may change, a FIFO
//! where root reads, a huge sparse file, a directory replaced by a link — and tries to change
//! its release, its venv, the shared store and pyapp's state. Then root runs every command
//! that touches the app (upgrade, watch, rollback, config --set, status, logs, gc, remove,
//! remove --purge). Each must refuse or succeed (exit 0 or 1, never hang, never 2), and the
//! files root owns must be exactly as before.

use crate::harness::{self, fact, run_in_sandbox};
use crate::lifecycle::{bundle, Flaw};

const SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; V2=$4; V3=$5
A=/applications/hello
PY=/usr/bin/python3
as_app() { setpriv --reuid=hello --regid=hello --init-groups "$@"; }
step() { NAME=$1; shift; timeout 120 "$@" > $OUT/$NAME.log 2>&1; echo $? > $OUT/$NAME.rc; }
# What only root may change: the targets of every planted link.
echo "root's own" > /root/target; chmod 600 /root/target
mkdir -p /srv/victim; echo keep > /srv/victim/file
fingerprint() {
  stat -c '%n %u:%g %a %s %Y' /etc/shadow /etc/passwd /etc/group /root/target \
    /srv/victim /srv/victim/file /etc
  sha256sum /etc/shadow /etc/passwd /etc/group /root/target /srv/victim/file
  find /srv/victim /root -maxdepth 1 -newer /root/target -printf '%p %u:%g %m %s\n' | sort
  ls /srv/victim /root
}
step install "$INSTALL" --python $PY "$V1"
fingerprint > $OUT/before

# Its code, its venv, the store and pyapp's state are not the app user's to change.
as_app touch $A/current/src/planted 2>/dev/null; echo $? > $OUT/write.release
as_app sh -c "echo >> $A/current/venv/bin/hello" 2>/dev/null; echo $? > $OUT/write.venv
as_app sh -c "echo >> $A/current/venv/pyvenv.cfg" 2>/dev/null; echo $? > $OUT/write.pyvenv
store_file=$(find /applications/.store -type f -name '*.py' | head -1)
echo "$store_file" > $OUT/store.file
as_app sh -c "echo >> '$store_file'" 2>/dev/null; echo $? > $OUT/write.store
as_app touch /applications/.store/planted 2>/dev/null; echo $? > $OUT/write.store.dir
as_app touch $A/.pyapp/planted 2>/dev/null; echo $? > $OUT/write.state
as_app sh -c "echo >> $A/.pyapp/receipt.json" 2>/dev/null; echo $? > $OUT/write.receipt
as_app ln -sfn /srv/victim $A/current 2>/dev/null; echo $? > $OUT/write.current
as_app mv $A/data $A/data.moved 2>/dev/null; echo $? > $OUT/move.data

plant() {
  # Links to what root owns, where root reads, writes, chowns or deletes.
  as_app ln -sfn /srv/victim $A/tmp/victim
  as_app ln -sfn /srv/victim $A/run/victim
  as_app ln -sfn /etc/shadow $A/log/shadow.log
  as_app ln -sfn /etc $A/data/etc
  # A hard link to a root file (refused by the kernel's protected_hardlinks).
  as_app ln /etc/shadow $A/data/shadow 2>/dev/null; echo $? > $OUT/hardlink.rc
  # What blocks or floods a reader.
  as_app rm -f $A/run/fifo $A/log/fifo.log; as_app mkfifo $A/run/fifo $A/log/fifo.log
  as_app truncate -s 64G $A/log/huge.log
  as_app python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.bind('$A/run/planted.sock')" 2>/dev/null
}
# A lasting directory, or the hook log root appends to, replaced by a link: refused, never
# followed.
plant_dir() {
  as_app rm -rf $A/data/sessions; as_app ln -s /etc $A/data/sessions
  as_app rm -rf $A/log/hooks.log; as_app ln -s /root/target $A/log/hooks.log
}
plant
step upgrade "$INSTALL" --python $PY "$V2"
fingerprint > $OUT/after.upgrade
mkdir -p /srv/inbox; cp "$V3" /srv/inbox/
step watch "$INSTALL" watch /srv/inbox
fingerprint > $OUT/after.watch
step rollback "$INSTALL" rollback hello
fingerprint > $OUT/after.rollback
step config "$INSTALL" config hello --set greeting=Hi
step config-show "$INSTALL" config hello
fingerprint > $OUT/after.config
step status "$INSTALL" status hello
step logs "$INSTALL" logs hello -n 20
step gc "$INSTALL" gc
fingerprint > $OUT/after.readers
plant_dir
step upgrade-over-link "$INSTALL" --python $PY "$V3"
fingerprint > $OUT/after.upgrade-over-link
step remove "$INSTALL" remove hello
fingerprint > $OUT/after.remove
as_app true 2>/dev/null
step reinstall "$INSTALL" --python $PY "$V1"
plant; plant_dir
step purge "$INSTALL" remove --purge hello
fingerprint > $OUT/after.purge
ls $A > $OUT/purged 2>&1
exit 0
"#;

#[test]
fn nothing_the_app_user_plants_steers_what_root_does() {
    let sandbox = harness::sandbox();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let v1 = bundle(work.path(), "1.0.0", Flaw::None);
    let v2 = bundle(work.path(), "1.1.0", Flaw::None);
    let v3 = bundle(work.path(), "1.2.0", Flaw::None);
    let out = run_in_sandbox(
        &sandbox,
        work.path(),
        SCRIPT,
        [harness::bin("pyapp-install"), v1, v2, v3],
    );
    let read = |name: &str| fact(&out, name);
    let log = |name: &str| read(&format!("{name}.log"));
    assert_eq!(read("install.rc"), "0", "{}", log("install"));

    for attempt in [
        "write.release",
        "write.venv",
        "write.pyvenv",
        "write.store",
        "write.store.dir",
        "write.state",
        "write.receipt",
        "write.current",
        "move.data",
    ] {
        assert_ne!(read(attempt), "0", "the app user could {attempt}");
    }
    assert!(
        !read("store.file").is_empty(),
        "the store holds no file to attack"
    );
    assert_ne!(
        read("hardlink.rc"),
        "0",
        "the app user hard-linked /etc/shadow"
    );

    // Links and FIFOs inside the app's own directories are its business: the upgrade and
    // the readers neither follow nor trip over them (none hangs: timeout says 124), and root
    // can always take a compromised app away.
    for step in [
        "upgrade",
        "watch",
        "rollback",
        "config",
        "config-show",
        "status",
        "logs",
        "gc",
        "remove",
        "purge",
    ] {
        assert_eq!(read(&format!("{step}.rc")), "0", "{step}: {}", log(step));
    }
    let reinstalled = read("reinstall.rc");
    assert!(
        reinstalled == "0" || reinstalled == "1",
        "reinstall exited {reinstalled}: {}",
        log("reinstall")
    );
    // A lasting directory replaced by a link is refused rather than followed.
    assert_eq!(
        read("upgrade-over-link.rc"),
        "1",
        "{}",
        log("upgrade-over-link")
    );
    assert!(
        log("upgrade-over-link").contains("is a symbolic link"),
        "{}",
        log("upgrade-over-link")
    );

    let before = read("before");
    for after in [
        "after.upgrade",
        "after.watch",
        "after.rollback",
        "after.config",
        "after.readers",
        "after.upgrade-over-link",
        "after.remove",
        "after.purge",
    ] {
        assert_eq!(
            read(after),
            before,
            "root's files changed by the time of {after}"
        );
    }
    assert!(
        read("purged").contains("No such file or directory"),
        "remove --purge left {}",
        read("purged")
    );
}
