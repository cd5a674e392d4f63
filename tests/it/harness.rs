//! Shared test plumbing: where the built binaries and the downloaded wheels are, copies of
//! fixture projects to modify, and building a fixture's bundle with the real pyapp-build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A binary of the workspace, built by `cargo build --workspace` (tests/run does that).
pub fn bin(name: &str) -> PathBuf {
    let path = workspace().join("target/debug").join(name);
    let from_target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(|dir| PathBuf::from(dir).join("debug").join(name));
    let path = match from_target_dir {
        Some(candidate) if candidate.exists() => candidate,
        _ => path,
    };
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (tests/run does)",
        path.display()
    );
    path
}

/// The wheels of `fixtures/hello`'s pins, downloaded by tests/run.
pub fn hello_wheels() -> PathBuf {
    let dir = workspace().join("target/wheels/hello");
    assert!(
        dir.is_dir(),
        "{} is missing: tests/run downloads the fixture's wheels first",
        dir.display()
    );
    dir
}

/// The build backends' wheels (tests/build-backends.txt), downloaded by tests/run: every
/// offline build takes its app's build backend from here.
pub fn backend_wheels() -> PathBuf {
    let dir = workspace().join("target/wheels/backends");
    assert!(
        dir.is_dir(),
        "{} is missing: tests/run downloads the build backends' wheels first",
        dir.display()
    );
    dir
}

/// A fresh copy of `fixtures/NAME` in a temporary directory, to modify.
pub fn fixture_copy(name: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("temp dir");
    let source = workspace().join("fixtures").join(name);
    for entry in walkdir::WalkDir::new(&source) {
        let entry = entry.expect("walk fixture");
        let target = copy
            .path()
            .join(entry.path().strip_prefix(&source).expect("inside fixture"));
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
    copy
}

/// Replace `from` by `to` in a file of a project copy.
pub fn edit(project: &Path, file: &str, from: &str, to: &str) {
    let path = project.join(file);
    let text = std::fs::read_to_string(&path).expect("read file to edit");
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write edited file");
}

/// A fresh copy of `fixtures/hello` whose pyproject.toml says `version`.
pub fn hello_at_version(version: &str) -> tempfile::TempDir {
    let project = fixture_copy("hello");
    edit(
        project.path(),
        "pyproject.toml",
        "version = \"1.0.0\"",
        &format!("version = \"{version}\""),
    );
    project
}

/// Runs `pyapp-install --root ROOT ARGS…` to its end.
pub fn pyapp_install_at(root: &Path, args: &[&str]) -> Output {
    Command::new(bin("pyapp-install"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run pyapp-install")
}

/// pyapp-build on `project` into `out_dir`, with the fixture's and the build backends'
/// wheels, ready for more arguments and its environment.
pub fn pyapp_build_command(project: &Path, out_dir: &Path) -> Command {
    let mut command = Command::new(bin("pyapp-build"));
    command
        .arg(project)
        .arg("-o")
        .arg(out_dir)
        .arg("--wheels")
        .arg(hello_wheels())
        .arg("--wheels")
        .arg(backend_wheels());
    command
}

/// Run pyapp-build offline on `project` with the fixture's wheels; `extra` adds arguments.
pub fn pyapp_build(project: &Path, out_dir: &Path, extra: &[&str]) -> Output {
    pyapp_build_command(project, out_dir)
        .arg("--no-index")
        .args(extra)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run pyapp-build")
}

/// Build `project` and return the bundle's path; panics with pyapp-build's stderr on failure.
pub fn build_bundle(project: &Path, out_dir: &Path) -> PathBuf {
    build_bundle_with(project, out_dir, &[])
}

/// [`build_bundle`] with more pyapp-build arguments (`--sign KEY`…).
pub fn build_bundle_with(project: &Path, out_dir: &Path, extra: &[&str]) -> PathBuf {
    let output = pyapp_build(project, out_dir, extra);
    assert!(
        output.status.success(),
        "pyapp-build failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).expect("utf-8 path").trim())
}

/// stderr of a finished command, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every entry under `dir` with its kind, mode, size and sha256 (or link target): two
/// equal listings mean nothing was written, removed or changed.
pub fn listing(dir: &Path) -> BTreeMap<PathBuf, String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let mut entries = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.expect("walk tree");
        let meta = entry.path().symlink_metadata().expect("stat");
        let what = if meta.file_type().is_symlink() {
            format!(
                "link -> {}",
                std::fs::read_link(entry.path())
                    .expect("readlink")
                    .display()
            )
        } else if meta.is_dir() {
            format!("dir {:o}", meta.mode())
        } else {
            let bytes = std::fs::read(entry.path()).expect("read file");
            let digest: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("file {:o} {} {digest}", meta.mode(), bytes.len())
        };
        entries.insert(
            entry.path().strip_prefix(dir).expect("inside").to_owned(),
            what,
        );
    }
    entries
}

/// The systemd-sandbox tool for a test that needs a real systemd; CI always has it, so its
/// absence fails the test (with the reason) rather than skipping it.
pub fn sandbox() -> PathBuf {
    systemd_sandbox().unwrap_or_else(|reason| {
        panic!("this test needs systemd-sandbox (as root, ../shared beside the checkout): {reason}")
    })
}

/// `shared/tools/systemd-sandbox` beside the checkout (or `$SYSTEMD_SANDBOX`), when tests
/// that need a real systemd can run here; otherwise why not.
fn systemd_sandbox() -> Result<PathBuf, String> {
    let is_root = std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if !is_root {
        return Err("not root".to_owned());
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("systemd-analyze is not installed".to_owned());
    }
    let candidates = [
        std::env::var_os("SYSTEMD_SANDBOX").map(PathBuf::from),
        Some(workspace().join("../shared/tools/systemd-sandbox")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|path| path.is_file())
        .ok_or_else(|| "shared/tools/systemd-sandbox is not beside the checkout".to_owned())
}

/// Runs `script` with bash under `sandbox` as `bash SCRIPT OUT ARGS…`, OUT being a new
/// directory `work/out` where the script leaves the facts the test checks (`work`, not under
/// /tmp, which the sandbox mounts anew, stays writable through to here). Panics with the
/// sandbox's stderr when the script could not run; returns OUT.
pub fn run_in_sandbox<S: AsRef<std::ffi::OsStr>>(
    sandbox: &Path,
    work: &Path,
    script: &str,
    args: impl IntoIterator<Item = S>,
) -> PathBuf {
    let out = work.join("out");
    std::fs::create_dir(&out).expect("make the sandbox's out directory");
    let script_path = work.join("script.sh");
    std::fs::write(&script_path, script).expect("write the sandbox's script");
    let run = Command::new(sandbox)
        .arg("--")
        .arg("bash")
        .arg(&script_path)
        .arg(&out)
        .args(args)
        .env("SANDBOX_BIND", work)
        .output()
        .expect("run systemd-sandbox");
    assert!(run.status.success(), "sandbox: {}", stderr(&run));
    out
}

/// The fact a sandbox script left in `out/name`, without its trailing newline.
pub fn fact(out: &Path, name: &str) -> String {
    std::fs::read_to_string(out.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", out.join(name).display()))
        .trim_end()
        .to_string()
}

/// A `PATH` whose `systemd-analyze` (written into `dir`) refuses every calendar expression
/// and logs its arguments to `dir/systemd-analyze.log`: a systemd that disagrees with the
/// native check, which agrees with the real one, to show whose word is final.
pub fn path_with_refusing_systemd_analyze(dir: &Path) -> std::ffi::OsString {
    use std::os::unix::fs::PermissionsExt;
    let tool = dir.join("systemd-analyze");
    let log = dir.join("systemd-analyze.log");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n\
         echo \"Failed to parse calendar specification '$3': refused by this test\" >&2\nexit 1\n",
        log.display()
    );
    std::fs::write(&tool, script).expect("write the stand-in systemd-analyze");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut path = std::ffi::OsString::from(dir);
    if let Some(rest) = std::env::var_os("PATH") {
        path.push(":");
        path.push(rest);
    }
    path
}
