//! Faults (spec/SECURITY.md, "Faults"): pyapp-install killed with SIGKILL at every fault
//! point (`PYAPP_INSTALL_KILL_AT`) and at random moments of an install, an upgrade, a
//! rollback and a remove; an upgrade into a full disk; two installs of one app at once.
//! After each, nothing is lost: `current` is the old or the new release and complete
//! (every file of every RECORD of its venv and of its `src/`, with its hash and size),
//! every other release on disk is complete too, `config/` and `data/` are byte-identical,
//! and the next run (without `--wait`: the dead holder's lock is free) leaves no
//! leftovers. Every entry of the shared store is whole at any moment, and after the next
//! run and a `gc` the store holds no leftovers and only entries a release uses. Those run
//! under `--root` scratch trees. Under systemd-sandbox, with a real app user: links
//! planted in the tree before an upgrade, and hooks that fail or hang.
//!
//! One module per kind of fault, the lab and the checks they share here:
//! - [`fault_points`]: SIGKILL at every injected fault point;
//! - [`random_kills`]: SIGKILL at seeded random moments;
//! - [`disk_full`]: an upgrade into a full disk;
//! - [`concurrent`]: two installs of one app at once, and a killed lock holder;
//! - [`planted_links`]: links the app user plants in its tree (systemd-sandbox);
//! - [`hook_failures`]: hooks that fail or hang (systemd-sandbox).

mod concurrent;
mod disk_full;
mod fault_points;
mod hook_failures;
mod planted_links;
mod random_kills;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Cursor, Read};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::harness::{bin, build_bundle, edit, hello_at_version, listing, stderr};

/// The app's directory under a root.
const APP: &str = "applications/hello";

/// The versions built from `fixtures/hello`.
const VERSIONS: [&str; 3] = ["1.0.0", "1.1.0", "1.2.0"];

/// The interpreter the tests install with when it exists (finding one on PATH can go
/// through slow shims; the fault tests run many installs).
const PYTHON: &str = "/usr/bin/python3";

/// The bundles of `fixtures/hello` 1.0.0, 1.1.0 and 1.2.0 keeping two releases (so the
/// third install prunes the first), built once per test process.
fn bundle_bytes() -> &'static [Vec<u8>; 3] {
    static BYTES: OnceLock<[Vec<u8>; 3]> = OnceLock::new();
    BYTES.get_or_init(|| {
        VERSIONS.map(|version| {
            let project = hello_at_version(version);
            edit(
                project.path(),
                "metadata.yaml",
                "keep-releases: 3",
                "keep-releases: 2",
            );
            let out = tempfile::tempdir().expect("temp out dir");
            fs::read(build_bundle(project.path(), out.path())).expect("read the bundle")
        })
    })
}

/// A bundle on disk and what a release made from it must hold.
pub struct Version {
    pub bundle: PathBuf,
    /// Its release name, `VERSION-HASH`.
    pub release: String,
    /// The files of its manifest: path -> (sha256 hex, size).
    pub files: BTreeMap<String, (String, u64)>,
}

impl Version {
    /// Writes `bytes` (a bundle of `version`) into `dir` and reads its manifest.
    pub fn new(dir: &Path, version: &str, bytes: &[u8]) -> Version {
        let bundle = dir.join(format!("hello-{version}.pyapp"));
        fs::write(&bundle, bytes).expect("write the bundle");
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a zip");
        let mut manifest = Vec::new();
        archive
            .by_name("manifest.json")
            .expect("manifest.json")
            .read_to_end(&mut manifest)
            .expect("read manifest.json");
        // The content digest (FORMAT.md 1.1): the manifest, then each executable entry.
        let mut content = Sha256::new();
        content.update(&manifest);
        let mut executables: Vec<String> = (0..archive.len())
            .filter_map(|index| {
                let entry = archive.by_index(index).expect("entry");
                let executable = entry.unix_mode().is_some_and(|mode| mode & 0o111 != 0);
                executable.then(|| entry.name().expect("a UTF-8 name").into_owned())
            })
            .collect();
        executables.sort();
        for name in executables {
            content.update(format!("{name}\n"));
        }
        let sha = hex::encode(content.finalize());
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("JSON");
        let files = manifest["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|file| {
                (
                    file["path"].as_str().expect("path").to_owned(),
                    (
                        file["sha256"].as_str().expect("sha256").to_owned(),
                        file["size"].as_u64().expect("size"),
                    ),
                )
            })
            .collect();
        Version {
            bundle,
            release: format!("{version}-{}", &sha[..12]),
            files,
        }
    }
}

/// Checks that `dir` holds the whole release of `version`: the bundle's `src/` files,
/// `metadata.yaml` and `configuration.yaml` with their manifest hashes and sizes, one
/// `.dist-info` per wheel, and every file of every RECORD with its hash and size.
pub fn check_complete(dir: &Path, version: &Version) -> Result<(), String> {
    for (path, (sha, size)) in &version.files {
        let installed = match path.strip_prefix("src/") {
            Some(rest) => dir.join("src").join(rest),
            None if path == "metadata.yaml" || path == "configuration.yaml" => dir.join(path),
            None => continue,
        };
        check_file(&installed, |bytes| {
            hex::encode(Sha256::digest(bytes)) == *sha && bytes.len() as u64 == *size
        })?;
    }
    let venv = dir.join("venv");
    for needed in ["pyvenv.cfg", "bin/python"] {
        fs::symlink_metadata(venv.join(needed))
            .map_err(|err| format!("{}: {err}", venv.join(needed).display()))?;
    }
    let lib = venv.join("lib");
    let pythons = names(&lib)?;
    let [python] = pythons.as_slice() else {
        return Err(format!("{}: {pythons:?}", lib.display()));
    };
    let site = lib.join(python).join("site-packages");
    let dist_infos: Vec<String> = names(&site)?
        .into_iter()
        .filter(|name| name.ends_with(".dist-info"))
        .collect();
    let wheels = version
        .files
        .keys()
        .filter(|p| p.starts_with("deps/"))
        .count();
    if dist_infos.len() != wheels {
        return Err(format!(
            "{}: {} .dist-info for {wheels} wheels",
            site.display(),
            dist_infos.len()
        ));
    }
    for dist_info in dist_infos {
        let record_path = site.join(&dist_info).join("RECORD");
        let record = fs::read_to_string(&record_path)
            .map_err(|err| format!("{}: {err}", record_path.display()))?;
        for line in record.lines().filter(|line| !line.is_empty()) {
            let mut fields = line.rsplitn(3, ',');
            let (Some(size), Some(hash), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("{}: bad row {line:?}", record_path.display()));
            };
            if hash.is_empty() {
                continue;
            }
            let digest = hash
                .strip_prefix("sha256=")
                .ok_or_else(|| format!("{}: {line:?}", record_path.display()))?;
            let size: usize = size
                .parse()
                .map_err(|_| format!("{}: {line:?}", record_path.display()))?;
            check_file(&site.join(path), |bytes| {
                base64_url(&Sha256::digest(bytes)) == digest && bytes.len() == size
            })?;
        }
    }
    Ok(())
}

/// Checks that `path` is a regular file whose bytes `good` accepts.
fn check_file(path: &Path, good: impl Fn(&[u8]) -> bool) -> Result<(), String> {
    let meta = fs::symlink_metadata(path).map_err(|err| format!("{}: {err}", path.display()))?;
    let bytes = match meta.file_type().is_file() {
        true => fs::read(path).map_err(|err| format!("{}: {err}", path.display()))?,
        false => return Err(format!("{} is not a regular file", path.display())),
    };
    match good(&bytes) {
        true => Ok(()),
        false => Err(format!("{} has the wrong hash or size", path.display())),
    }
}

/// RFC 4648 base64url without padding, as RECORD writes hashes.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|err| format!("{}: {err}", dir.display()))?
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    Ok(names)
}

/// `pyapp-install --root ROOT ARGS…`, with `--python` for an install.
fn pyapp_install(root: &Path, args: &[OsString]) -> Command {
    let mut command = Command::new(bin("pyapp-install"));
    command.arg("--root").arg(root);
    let installs = args
        .last()
        .is_some_and(|arg| arg.to_string_lossy().ends_with(".pyapp"));
    if installs && Path::new(PYTHON).exists() {
        command.arg("--python").arg(PYTHON);
    }
    command.args(args).stdin(Stdio::null());
    command
}

/// Runs `pyapp-install --root ROOT ARGS…` to its end.
fn run(root: &Path, args: &[OsString]) -> Output {
    pyapp_install(root, args)
        .output()
        .expect("run pyapp-install")
}

/// config/ and data/ as they must stay.
#[derive(Debug, Clone, PartialEq)]
struct Kept {
    config: BTreeMap<PathBuf, String>,
    data: BTreeMap<PathBuf, String>,
}

impl Kept {
    fn of(root: &Path) -> Kept {
        let app = root.join(APP);
        Kept {
            config: listing(&app.join("config")),
            data: listing(&app.join("data")),
        }
    }
}

/// The bundles, and scratch roots with hello installed to copy for each run.
struct Lab {
    dir: TempDir,
    versions: Vec<Version>,
    /// 1.0.0 then 1.1.0 installed (1.1.0 current), with data written.
    two: PathBuf,
    /// `two` then 1.2.0 installed (1.0.0 pruned).
    three: PathBuf,
    kept: Kept,
}

impl Lab {
    fn new() -> Lab {
        let dir = scratch_dir();
        let bundles = dir.path().join("bundles");
        fs::create_dir(&bundles).expect("mkdir");
        let versions: Vec<Version> = VERSIONS
            .iter()
            .zip(bundle_bytes())
            .map(|(version, bytes)| Version::new(&bundles, version, bytes))
            .collect();
        let two = dir.path().join("two");
        let three = dir.path().join("three");
        let install = |root: &Path, version: &Version| {
            let output = run(root, &["--quiet".into(), version.bundle.clone().into()]);
            assert!(output.status.success(), "{}", stderr(&output));
        };
        install(&two, &versions[0]);
        let data = two.join(APP).join("data");
        fs::write(data.join("visits.txt"), "41").expect("write data");
        fs::write(data.join("sessions/abc"), "session").expect("write data");
        install(&two, &versions[1]);
        copy_tree(&two, &three);
        install(&three, &versions[2]);
        let kept = Kept::of(&two);
        assert_eq!(
            Kept::of(&three),
            kept,
            "an upgrade changed config/ or data/"
        );
        Lab {
            dir,
            versions,
            two,
            three,
            kept,
        }
    }

    fn release(&self, index: usize) -> &str {
        &self.versions[index].release
    }

    /// Checks what must hold at any moment: `current` is one of `allowed` (`None`: no
    /// `current`), every release on disk is complete (names with a leading dot and links
    /// are leftovers of a killed run), config/ and data/ are `kept` (when given).
    fn check_whole(
        &self,
        root: &Path,
        allowed: &[Option<&str>],
        kept: Option<&Kept>,
    ) -> Result<(), String> {
        let app = root.join(APP);
        let current = current_release(&app)?;
        if !allowed.contains(&current.as_deref()) {
            return Err(format!("current is {current:?}, not one of {allowed:?}"));
        }
        let releases = app.join("releases");
        for name in names(&releases).unwrap_or_default() {
            let path = releases.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(|err| err.to_string())?;
            if name.starts_with('.') || meta.file_type().is_symlink() {
                continue;
            }
            let version = self
                .versions
                .iter()
                .find(|version| version.release == name)
                .ok_or_else(|| format!("unknown release {name}"))?;
            check_complete(&path, version)?;
        }
        if let Some(current) = &current {
            if !fs::symlink_metadata(releases.join(current)).is_ok_and(|meta| meta.is_dir()) {
                return Err(format!(
                    "current points at {current}, not a release directory"
                ));
            }
        }
        if let Some(kept) = kept {
            if Kept::of(root) != *kept {
                return Err("config/ or data/ changed".to_owned());
            }
        }
        check_store(root)
    }

    /// Checks the state after a recovery run: [`Lab::check_whole`] with `current` at
    /// `expected`, nothing left over, the receipt agreeing, the lock free.
    fn check_recovered(
        &self,
        root: &Path,
        expected: Option<&str>,
        kept: Option<&Kept>,
    ) -> Result<(), String> {
        self.check_whole(root, &[expected], kept)?;
        let app = root.join(APP);
        let releases = app.join("releases");
        for name in names(&releases).unwrap_or_default() {
            let is_dir = fs::symlink_metadata(releases.join(&name)).is_ok_and(|m| m.is_dir());
            if name.starts_with('.') || !is_dir {
                return Err(format!("leftover releases/{name}"));
            }
        }
        for dir in [app.clone(), app.join(".pyapp")] {
            for name in names(&dir).unwrap_or_default() {
                if name.contains(".tmp-") {
                    return Err(format!("leftover {}", dir.join(name).display()));
                }
            }
        }
        let receipt = fs::read(app.join(".pyapp/receipt.json")).ok();
        let recorded = receipt.map(|bytes| {
            let receipt: serde_json::Value = serde_json::from_slice(&bytes).expect("receipt");
            receipt["release"].as_str().expect("release").to_owned()
        });
        if recorded.as_deref() != expected {
            return Err(format!("the receipt says {recorded:?}, not {expected:?}"));
        }
        if let Ok(lock) = fs::File::open(app.join(".pyapp/lock")) {
            lock.try_lock()
                .map_err(|err| format!("the lock is still held: {err}"))?;
        }
        // What is left in the store is garbage for gc, which leaves only used entries.
        let gc = run(root, &["gc".into()]);
        if !gc.status.success() {
            return Err(format!("gc failed: {}", stderr(&gc)));
        }
        check_store_collected(root)?;
        self.check_whole(root, &[expected], kept)
            .map_err(|err| format!("after gc: {err}"))
    }
}

/// The shared store of a root.
fn store_dir(root: &Path) -> PathBuf {
    root.join("applications/.store")
}

/// Checks that every entry of the store is whole: each file its index lists is there,
/// a regular file with the listed sha256, size and mode.
fn check_store(root: &Path) -> Result<(), String> {
    let wheels = store_dir(root).join("wheels");
    for sha in names(&wheels).unwrap_or_default() {
        let dir = wheels.join(&sha);
        let index_path = dir.join("index.json");
        let index: serde_json::Value = fs::read(&index_path)
            .map_err(|err| err.to_string())
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|err| err.to_string()))
            .map_err(|err| format!("{}: {err}", index_path.display()))?;
        let files = index["files"]
            .as_array()
            .ok_or_else(|| format!("{}: no files", index_path.display()))?;
        for file in files {
            let path = dir.join("files").join(file["path"].as_str().unwrap_or("?"));
            let (sha256, size) = (file["sha256"].as_str(), file["size"].as_u64());
            check_file(&path, |bytes| {
                Some(hex::encode(Sha256::digest(bytes)).as_str()) == sha256
                    && Some(bytes.len() as u64) == size
            })?;
            let mode = fs::metadata(&path).map_err(|err| err.to_string())?.mode() & 0o7777;
            let expected = if file["executable"] == true {
                0o755
            } else {
                0o644
            };
            if mode != expected {
                return Err(format!("{} has mode {mode:o}", path.display()));
            }
        }
    }
    Ok(())
}

/// After `gc`: nothing under the store's `tmp/`, and every entry has a file that is also
/// a file of a release on disk (the same inode: one of its files, or its `index.json`
/// that a venv linking its `.dist-info` keeps a link to).
fn check_store_collected(root: &Path) -> Result<(), String> {
    let store = store_dir(root);
    let leftovers = names(&store.join("tmp")).unwrap_or_default();
    if !leftovers.is_empty() {
        return Err(format!("leftovers in the store after gc: {leftovers:?}"));
    }
    let releases = root.join(APP).join("releases");
    let in_releases: std::collections::HashSet<u64> = walkdir::WalkDir::new(&releases)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .filter_map(|entry| entry.metadata().ok().map(|meta| meta.ino()))
        .collect();
    for sha in names(&store.join("wheels")).unwrap_or_default() {
        let entry = store.join("wheels").join(&sha);
        let used = walkdir::WalkDir::new(&entry)
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|entry| entry.metadata().ok())
            .any(|meta| meta.is_file() && in_releases.contains(&meta.ino()));
        if !used {
            return Err(format!("store entry {sha} is used by no release after gc"));
        }
    }
    Ok(())
}

/// The release `APP/current` points at, `None` when there is no `current`.
fn current_release(app: &Path) -> Result<Option<String>, String> {
    match fs::read_link(app.join("current")) {
        Ok(target) => target
            .strip_prefix("releases")
            .ok()
            .and_then(|rest| rest.to_str())
            .map(|name| Some(name.to_owned()))
            .ok_or_else(|| format!("current -> {}", target.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(format!("current: {err}")),
    }
}

/// A temporary directory for the lab, in memory when the machine has `/dev/shm`: the runs
/// are about processes killed, not machines, and the fsyncs of every file and directory
/// an install writes, on a disk the other tests are writing to, would make them slow.
fn scratch_dir() -> TempDir {
    let shm = Path::new("/dev/shm");
    let in_memory = fs::metadata(shm).is_ok_and(|meta| meta.is_dir());
    match in_memory {
        true => tempfile::tempdir_in(shm),
        false => tempfile::tempdir(),
    }
    .expect("temp dir")
}

/// `cp -a FROM TO`: a scratch root to start a run from.
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// What the killed command was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// 1.0.0 into an empty root.
    Install,
    /// 1.2.0 over 1.0.0 and 1.1.0 (pruning 1.0.0).
    Upgrade,
    /// `rollback` from 1.2.0 to 1.1.0.
    Rollback,
    /// `remove`, then 1.2.0 installed again.
    Remove,
}

impl Op {
    const ALL: [Op; 4] = [Op::Install, Op::Upgrade, Op::Rollback, Op::Remove];

    fn template(self, lab: &Lab) -> Option<&Path> {
        match self {
            Op::Install => None,
            Op::Upgrade => Some(&lab.two),
            Op::Rollback | Op::Remove => Some(&lab.three),
        }
    }

    fn args(self, lab: &Lab) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--quiet".into()];
        match self {
            Op::Install => args.push(lab.versions[0].bundle.clone().into()),
            Op::Upgrade => args.push(lab.versions[2].bundle.clone().into()),
            Op::Rollback => args.extend(["rollback".into(), "hello".into()]),
            Op::Remove => args.extend(["remove".into(), "hello".into()]),
        }
        args
    }

    /// The release current before and after the command (`None`: no `current`).
    fn before_after(self, lab: &Lab) -> (Option<&str>, Option<&str>) {
        match self {
            Op::Install => (None, Some(lab.release(0))),
            Op::Upgrade => (Some(lab.release(1)), Some(lab.release(2))),
            Op::Rollback => (Some(lab.release(2)), Some(lab.release(1))),
            Op::Remove => (Some(lab.release(2)), None),
        }
    }

    /// A fresh root in `work` for the command to run on.
    fn prepare(self, lab: &Lab, work: &Path) -> PathBuf {
        let root = work.join("root");
        match self.template(lab) {
            Some(template) => copy_tree(template, &root),
            None => fs::create_dir(&root).expect("mkdir root"),
        }
        root
    }

    fn kept(self, lab: &Lab) -> Option<&Kept> {
        (self != Op::Install).then_some(&lab.kept)
    }
}

/// How the command dies.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// At this fault point.
    At(&'static str),
    /// SIGKILL after this long (it may have finished by then).
    After(Duration),
}

/// Runs `op` on a fresh root in `work`, kills it as `kill` says, checks the tree, runs
/// the command again (the recovery) and checks again. Returns whether the first run was
/// killed (rather than finished before the random delay).
fn crash_and_recover(lab: &Lab, op: Op, kill: Kill, work: &Path) -> Result<bool, String> {
    let root = op.prepare(lab, work);
    let mut command = pyapp_install(&root, &op.args(lab));
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let status: ExitStatus = match kill {
        Kill::At(point) => {
            let output = command
                .env("PYAPP_INSTALL_KILL_AT", point)
                .output()
                .expect("run pyapp-install");
            if output.status.signal() != Some(9) {
                return Err(format!(
                    "the fault point was not reached ({}): {}",
                    output.status,
                    stderr(&output)
                ));
            }
            output.status
        }
        Kill::After(delay) => {
            let mut child = command.spawn().expect("start pyapp-install");
            std::thread::sleep(delay);
            let _ = child.kill();
            let output = child.wait_with_output().expect("reap pyapp-install");
            if output.status.signal().is_none() && !output.status.success() {
                return Err(format!("the run failed by itself: {}", stderr(&output)));
            }
            output.status
        }
    };
    let killed = status.signal() == Some(9);
    let (before, after) = op.before_after(lab);
    let kept = op.kept(lab);
    lab.check_whole(&root, &[before, after], kept)
        .map_err(|err| format!("after the kill: {err}"))?;

    // The next run, the same command again, finds the lock free and completes the job.
    let again = run(&root, &op.args(lab));
    let done_already = match op {
        Op::Rollback => "has no release older than",
        Op::Remove => "hello is not installed",
        Op::Install | Op::Upgrade => "\0",
    };
    let refused_as_done = again.status.code() == Some(1) && stderr(&again).contains(done_already);
    if !again.status.success() && !refused_as_done {
        return Err(format!("the next run failed: {}", stderr(&again)));
    }
    lab.check_recovered(&root, after, kept)
        .map_err(|err| format!("after the next run: {err}"))?;
    if op == Op::Remove {
        let app = root.join(APP);
        for gone in ["releases", ".pyapp/receipt.json"] {
            if app.join(gone).exists() {
                return Err(format!("after the next remove: {gone} is still there"));
            }
        }
        let reinstall = run(&root, &Op::Upgrade.args(lab));
        if !reinstall.status.success() {
            return Err(format!("installing after remove: {}", stderr(&reinstall)));
        }
        lab.check_recovered(&root, Some(lab.release(2)), kept)
            .map_err(|err| format!("after installing again: {err}"))?;
    }
    Ok(killed)
}

/// Runs `work` on every item on two threads (each in its own temporary directory),
/// returning the failures as `LABEL: ERROR`.
fn on_two_threads<T: Sync>(
    lab: &Lab,
    items: &[T],
    label: impl Fn(&T) -> String + Sync,
    work: impl Fn(&T, &Path) -> Result<bool, String> + Sync,
) -> (Vec<String>, usize) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let killed = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(index) else { break };
                let scratch = tempfile::tempdir_in(lab.dir.path()).expect("temp dir");
                match work(item, scratch.path()) {
                    Ok(true) => {
                        killed.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(false) => {}
                    Err(err) => failures
                        .lock()
                        .expect("failures")
                        .push(format!("{}: {err}", label(item))),
                }
            });
        }
    });
    let failures = failures.into_inner().expect("failures");
    (failures, killed.into_inner())
}

/// A small seeded generator (splitmix64): the same seed gives the same delays.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % bound.max(1)
    }
}

/// Runs `script` in systemd-sandbox with `args` after the results directory and the
/// pyapp-install binary; its files by name.
fn in_sandbox(script: &str, args: &[&Path], work: &Path) -> BTreeMap<String, String> {
    let mut argv = vec![bin("pyapp-install")];
    argv.extend(args.iter().map(|arg| arg.to_path_buf()));
    let out = crate::harness::run_in_sandbox(&crate::harness::sandbox(), work, script, argv);
    names(&out)
        .expect("list out")
        .into_iter()
        .map(|name| {
            let fact = crate::harness::fact(&out, &name);
            (name, fact)
        })
        .collect()
}

/// A bundle of `fixtures/hello` at `version`, its metadata edited by `edits`.
fn sandbox_bundle(work: &Path, version: &str, edits: &[(&str, &str)]) -> PathBuf {
    let project = hello_at_version(version);
    for (from, to) in edits {
        edit(project.path(), "metadata.yaml", from, to);
    }
    let out = work.join(version);
    fs::create_dir_all(&out).expect("mkdir");
    build_bundle(project.path(), &out)
}
