//! An upgrade into a full disk (a small tmpfs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{
    bundle_bytes, check_complete, current_release, pyapp_install, run, SplitMix, Version, APP,
};
use crate::harness::{build_bundle, hello_at_version, listing, stderr};

/// Whether the tests run as root.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `size` on `dir`; why not, when it cannot.
    fn mount(dir: &Path, size: &str) -> Result<SmallDisk, String> {
        if !is_root() {
            return Err("not root".to_owned());
        }
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0755"))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .map_err(|err| format!("mount: {err}"))?;
        match output.status.success() {
            true => Ok(SmallDisk(dir.to_owned())),
            false => Err(format!("mount -t tmpfs failed: {}", stderr(&output))),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn an_upgrade_that_does_not_fit_on_the_disk_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    fs::create_dir(&root).expect("mkdir root");
    let _disk = match SmallDisk::mount(&root, "24m") {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!("skipped: the disk-full test mounts a 24 MiB tmpfs: {reason}");
            return;
        }
    };
    let v1 = Version::new(dir.path(), "1.0.0", &bundle_bytes()[0]);
    let installed = run(&root, &["--quiet".into(), v1.bundle.clone().into()]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    fs::write(root.join(APP).join("data/visits.txt"), "41").expect("write data");

    // 1.1.0 carries 16 MiB of random bytes in src/ (and, as package data of static/, in
    // its app wheel too): the release does not fit in what is left.
    let project = hello_at_version("1.1.0");
    let mut rng = SplitMix(16);
    let padding: Vec<u8> = (0..16 << 20).map(|_| rng.below(256) as u8).collect();
    fs::write(project.path().join("src/hello/static/padding.bin"), padding).expect("write padding");
    let padded = build_bundle(project.path(), dir.path());

    let before = listing(&root);
    let refused = run(&root, &["--quiet".into(), padded.into()]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let message = stderr(&refused);
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 2, "{message}");
    // Issue 12, item 4: refused before anything is written, saying what it needs, what is
    // free and the limit.
    let apps = root.join("applications");
    assert!(
        lines[0].starts_with("error: refusing the bundle: installing it needs ")
            && lines[0].contains(&format!("`{}` has ", apps.display()))
            && lines[0].ends_with(" free, the limit (--max-installed-size) is 4.3 GB"),
        "{message}"
    );
    assert!(
        lines[1].starts_with("hint: free space on that filesystem"),
        "{message}"
    );
    let releases = root.join(APP).join("releases");
    // Nothing was written, `current` and everything else as it was.
    assert_eq!(listing(&root), before);
    assert_eq!(
        current_release(&root.join(APP)),
        Ok(Some(v1.release.clone()))
    );
    check_complete(&releases.join(&v1.release), &v1).expect("1.0.0 complete");
}

/// Issue 12: the disk is full when the receipt of an upgrade is written, after the switch
/// (and, on a real server, the hooks and the health check): the upgrade is undone, so that
/// the exit status (1) and what is current (1.0.0) agree. The same upgrade then succeeds.
#[test]
fn a_full_disk_at_the_receipt_undoes_the_upgrade() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    fs::create_dir(&root).expect("mkdir root");
    let v1 = Version::new(dir.path(), "1.0.0", &bundle_bytes()[0]);
    let v2 = Version::new(dir.path(), "1.1.0", &bundle_bytes()[1]);
    let installed = run(&root, &["--quiet".into(), v1.bundle.clone().into()]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    let app = root.join(APP);
    let receipt = fs::read(app.join(".pyapp/receipt.json")).expect("receipt");

    let full = pyapp_install(&root, &["--quiet".into(), v2.bundle.clone().into()])
        .env("PYAPP_INSTALL_DISK_FULL_AT", "before-receipt")
        .output()
        .expect("run pyapp-install");
    let message = stderr(&full);
    assert_eq!(full.status.code(), Some(1), "{message}");
    assert!(
        message.starts_with(&format!(
            "error: disk full: no space left on device while writing `{}`",
            app.join(".pyapp/receipt.json").display()
        )),
        "{message}"
    );
    assert_eq!(current_release(&app), Ok(Some(v1.release.clone())));
    assert_eq!(
        fs::read(app.join(".pyapp/receipt.json")).ok(),
        Some(receipt)
    );
    assert!(
        !app.join("releases").join(&v2.release).exists(),
        "1.1.0 is left"
    );
    check_complete(&app.join("releases").join(&v1.release), &v1).expect("1.0.0 complete");

    let again = run(&root, &["--quiet".into(), v2.bundle.clone().into()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(current_release(&app), Ok(Some(v2.release.clone())));
}
