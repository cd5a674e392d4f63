//! The Debian package of pyapp itself (cargo-deb metadata in pyapp-install/Cargo.toml,
//! built by `packaging/build-deb.sh --profile dev`, which tests/run runs first): what it
//! holds, and that it installs, works and removes cleanly with dpkg on a real system.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{self, bin, workspace};

/// The package tests/run built from this checkout's debug binaries.
fn package() -> PathBuf {
    let dir = workspace().join("target/debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    debs.pop().unwrap_or_else(|| {
        panic!(
            "no .deb in {}: run `packaging/build-deb.sh --profile dev` (tests/run does)",
            dir.display()
        )
    })
}

fn dpkg_deb(args: &[&str]) -> String {
    let output = Command::new("dpkg-deb").args(args).output().unwrap();
    assert!(output.status.success(), "dpkg-deb {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_package_holds_both_binaries_their_man_pages_and_completions() {
    let deb = package();
    let deb = deb.to_str().unwrap();
    assert_eq!(dpkg_deb(&["-f", deb, "Package"]).trim(), "pyapp");
    assert!(dpkg_deb(&["-f", deb, "Depends"]).contains("libc6"));
    let listing = dpkg_deb(&["-c", deb]);
    let mut expected = vec![
        "./usr/share/bash-completion/completions/pyapp-install".to_string(),
        "./usr/share/zsh/vendor-completions/_pyapp-build".to_string(),
        "./usr/share/fish/vendor_completions.d/pyapp-install.fish".to_string(),
        "./usr/share/doc/pyapp/copyright".to_string(),
        "./usr/share/doc/pyapp/FORMAT.md".to_string(),
        "./usr/share/doc/pyapp/openapi.json".to_string(),
        "./usr/lib/systemd/system/pyapp-console.service".to_string(),
        "./usr/lib/systemd/system/pyapp-notify@.service".to_string(),
        "./usr/lib/systemd/system/pyapp-notify.service".to_string(),
        "./usr/lib/systemd/system/pyapp-notify.path".to_string(),
    ];
    // The console's socket group is made on install; its unit is shipped, not enabled.
    let postinst = dpkg_deb(&["-I", deb, "postinst"]);
    assert!(
        postinst.contains("groupadd --system pyapp-admin"),
        "{postinst}"
    );
    assert!(!postinst.contains("systemctl enable"), "{postinst}");
    for binary in ["pyapp-build", "pyapp-install"] {
        expected.push(format!("./usr/bin/{binary}"));
        // A page for every command the binary has now: the package is not stale.
        let pages = tempfile::tempdir().unwrap();
        let output = Command::new(bin(binary))
            .args(["man", "--out-dir"])
            .arg(pages.path())
            .output()
            .unwrap();
        assert!(output.status.success());
        for page in String::from_utf8(output.stdout).unwrap().lines() {
            let name = PathBuf::from(page);
            let name = name.file_name().unwrap().to_str().unwrap();
            expected.push(format!("./usr/share/man/man1/{name}.gz"));
        }
    }
    for path in expected {
        assert!(
            listing.lines().any(|line| line.ends_with(&path)),
            "{path} is not in the package:\n{listing}"
        );
    }

    let unpacked = tempfile::tempdir().unwrap();
    dpkg_deb(&["-x", deb, unpacked.path().to_str().unwrap()]);
    for binary in ["pyapp-build", "pyapp-install"] {
        let packaged = std::fs::read(unpacked.path().join("usr/bin").join(binary)).unwrap();
        let built = std::fs::read(bin(binary)).unwrap();
        assert!(
            packaged == built,
            "{binary} in the package is not this build's: run packaging/build-deb.sh --profile dev"
        );
    }
}

const SCRIPT: &str = r#"
set -eu
deb=$1
dpkg -i "$deb"
pyapp-install --version
pyapp-build --version
man -w pyapp-install-rollback
test -s /usr/share/bash-completion/completions/pyapp-build
dpkg -r pyapp
if test -e /usr/bin/pyapp-install; then echo "dpkg -r left /usr/bin/pyapp-install"; exit 1; fi
echo PACKAGE-OK
"#;

#[test]
fn dpkg_installs_and_removes_the_package_on_a_real_system() {
    let sandbox = harness::sandbox();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let script = work.path().join("script.sh");
    std::fs::write(&script, SCRIPT).unwrap();
    let output = Command::new(sandbox)
        .arg("--")
        .arg("sh")
        .arg(&script)
        .arg(package())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("PACKAGE-OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("pyapp-install 0.1.0"), "{stdout}");
    assert!(
        stdout.contains("/usr/share/man/man1/pyapp-install-rollback.1.gz"),
        "{stdout}"
    );
}
