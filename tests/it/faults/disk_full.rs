//! An upgrade into a full disk (a small tmpfs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{bundle_bytes, check_complete, current_release, run, SplitMix, Version, APP};
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
fn an_upgrade_that_fills_the_disk_is_refused_and_changes_nothing() {
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
    // Where the space ran out: the staged release, or the store entry being unpacked.
    let releases = root.join(APP).join("releases");
    let unpacking = root.join("applications/.store/tmp");
    assert!(
        [&releases, &unpacking]
            .iter()
            .any(|dir| lines[0].starts_with(&format!(
                "error: disk full: no space left on device while writing `{}/",
                dir.display()
            ))),
        "{message}"
    );
    assert!(
        lines[1].starts_with("hint: free some space on that filesystem"),
        "{message}"
    );
    // The staged release is gone, `current` and everything else as it was.
    assert_eq!(listing(&root), before);
    assert_eq!(
        current_release(&root.join(APP)),
        Ok(Some(v1.release.clone()))
    );
    check_complete(&releases.join(&v1.release), &v1).expect("1.0.0 complete");
}
