//! The shared store (spec/FORMAT.md 6.6), with the real binaries: two apps installing the
//! same wheels share their files' inodes with `APPS/.store`; `local` wheels, rewritten
//! `#!python` scripts, launchers, `INSTALLER` and `RECORD` are each venv's own; `gc` (by
//! hand, after `remove`, after pruning) deletes exactly the entries no release uses, never
//! while an install holds the store, and `--dry-run` deletes nothing; a store on another
//! filesystem than the release is copied from, and that is said once. Kills during
//! unpacking, linking and collecting are in `faults/` (`fault_points`, `random_kills`).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;
use tempfile::TempDir;

use crate::faults::{check_complete, Version};
use crate::harness::{bin, edit, fixture_copy, listing, pyapp_build, stderr, workspace};

/// The interpreter the installs use when it exists (PATH may hold slow shims).
const PYTHON: &str = "/usr/bin/python3";

/// The wheel whose `.data/scripts` carry `#!python` placeholders, from the reference set.
const DOCUTILS: &str = "docutils==0.20.1";

/// A bundle built once per test process, with its bytes.
struct Built {
    path: PathBuf,
    _out: TempDir,
}

/// `fixtures/hello` named `name` (its project name too, so its own wheel differs) at
/// `version`, with docutils added, pyyaml `mode: local`, and two releases kept.
fn build(name: &str, version: &str) -> Built {
    let project = fixture_copy("hello");
    let dir = project.path();
    edit(
        dir,
        "pyproject.toml",
        "name = \"hello\"",
        &format!("name = \"{name}\""),
    );
    edit(
        dir,
        "pyproject.toml",
        "version = \"1.0.0\"",
        &format!("version = \"{version}\""),
    );
    // A dependency of the app, so that its pin is packed (pins nothing requires are not).
    edit(
        dir,
        "pyproject.toml",
        "\"pyyaml>=6\",",
        "\"pyyaml>=6\",\n    \"docutils\",",
    );
    edit(dir, "metadata.yaml", "keep-releases: 3", "keep-releases: 2");
    let mut metadata = fs::read_to_string(dir.join("metadata.yaml")).expect("read metadata");
    metadata.push_str("local-dependencies: [pyyaml]\n");
    fs::write(dir.join("metadata.yaml"), metadata).expect("write metadata");
    let mut pins = fs::read_to_string(dir.join("pinned-requirements.txt")).expect("read pins");
    pins.push_str(&format!("{DOCUTILS}\n"));
    fs::write(dir.join("pinned-requirements.txt"), pins).expect("write pins");
    let out = tempfile::tempdir().expect("temp out dir");
    let reference = workspace().join("target/wheels/reference");
    let output = pyapp_build(
        dir,
        out.path(),
        &["--wheels", reference.to_str().expect("UTF-8 path")],
    );
    assert!(output.status.success(), "pyapp-build: {}", stderr(&output));
    let path = PathBuf::from(String::from_utf8(output.stdout).expect("UTF-8").trim());
    Built { path, _out: out }
}

/// hello 1.0.0, 1.1.0, 1.2.0 and hello2 1.0.0.
fn bundles() -> &'static [Built; 4] {
    static BUILT: OnceLock<[Built; 4]> = OnceLock::new();
    BUILT.get_or_init(|| {
        [
            build("hello", "1.0.0"),
            build("hello", "1.1.0"),
            build("hello", "1.2.0"),
            build("hello2", "1.0.0"),
        ]
    })
}

const HELLO: usize = 0;
const HELLO2: usize = 3;

/// `pyapp-install --root ROOT ARGS…`, with `--python` for an install.
fn pyapp_install(root: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(bin("pyapp-install"));
    command.arg("--root").arg(root);
    if args.last().is_some_and(|arg| arg.ends_with(".pyapp")) && Path::new(PYTHON).exists() {
        command.arg("--python").arg(PYTHON);
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pyapp-install")
}

/// Installs bundle `which` into `root`; returns stderr.
fn install(root: &Path, which: usize) -> String {
    let bundle = bundles()[which].path.to_str().expect("UTF-8 path");
    let output = pyapp_install(root, &[bundle]);
    assert!(output.status.success(), "install: {}", stderr(&output));
    stderr(&output)
}

/// Runs `pyapp-install --root ROOT ARGS… --json` successfully; its JSON.
fn json(root: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let output = pyapp_install(root, &args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn store(root: &Path) -> PathBuf {
    root.join("applications/.store")
}

/// The store's entries (sha256 names).
fn entries(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(store(root).join("wheels"))
        .expect("list the store")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("UTF-8")
        })
        .collect();
    names.sort();
    names
}

/// The entry holding the wheel whose file name starts with `prefix`, if any.
fn entry_of(root: &Path, prefix: &str) -> Option<PathBuf> {
    entries(root).into_iter().find_map(|sha| {
        let dir = store(root).join("wheels").join(sha);
        let index: Value =
            serde_json::from_slice(&fs::read(dir.join("index.json")).expect("index")).ok()?;
        index["wheel"]
            .as_str()
            .is_some_and(|wheel| wheel.starts_with(prefix))
            .then_some(dir)
    })
}

/// The current release of `app`, and its venv's site-packages.
fn release(root: &Path, app: &str) -> (PathBuf, PathBuf) {
    let current = root.join("applications").join(app).join("current");
    let release = fs::canonicalize(&current).expect("current");
    let lib = release.join("venv/lib");
    let python = fs::read_dir(&lib)
        .expect("venv/lib")
        .next()
        .expect("one python")
        .expect("entry")
        .file_name();
    let site = lib.join(python).join("site-packages");
    (release, site)
}

/// (device, inode, link count) of a file.
fn identity(path: &Path) -> (u64, u64, u64) {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.dev(), meta.ino(), meta.nlink())
}

/// Checks that the current release of `app` is whole and that its venv imports what it
/// needs (the venv's `bin/python` works under `--root`: it finds `pyvenv.cfg` beside it).
fn check_works(root: &Path, app: &str, which: usize) {
    let (release, _) = release(root, app);
    let scratch = tempfile::tempdir().expect("temp dir");
    let bytes = fs::read(&bundles()[which].path).expect("read the bundle");
    let version = Version::new(scratch.path(), "x", &bytes);
    check_complete(&release, &version).unwrap_or_else(|err| panic!("{app}: {err}"));
    let output = Command::new(release.join("venv/bin/python"))
        .args(["-c", "import docutils, flask, hello, yaml; print('ok')"])
        .output()
        .expect("run the venv's python");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "ok",
        "{app}: {}",
        stderr(&output)
    );
}

/// The interpreter's answer the first install remembered (FORMAT.md 6.6, "Interpreter
/// answers"), root's alone, with its release level changed to one no interpreter gives.
fn remember_a_marked_interpreter_answer(root: &Path) {
    let dir = store(root).join("interpreters");
    assert_eq!(fs::metadata(&dir).expect("stat").mode() & 0o7777, 0o700);
    let entries: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        fs::metadata(&entries[0]).expect("stat").mode() & 0o7777,
        0o600
    );
    let mut entry: Value =
        serde_json::from_slice(&fs::read(&entries[0]).expect("read")).expect("JSON");
    entry["answer"]["releaselevel"] = "remembered".into();
    fs::write(&entries[0], serde_json::to_vec(&entry).expect("JSON")).expect("write");
}

#[test]
fn two_apps_share_the_stores_files_and_keep_their_own_scripts_and_local_wheels() {
    let root = tempfile::tempdir().expect("temp root");
    let root = root.path();
    install(root, HELLO);
    remember_a_marked_interpreter_answer(root);
    install(root, HELLO2);
    let ((one, site1), (two, site2)) = (release(root, "hello"), release(root, "hello2"));
    // The second app was built on the first one's answer, not on a second query.
    let pyvenv = fs::read_to_string(two.join("venv/pyvenv.cfg")).expect("pyvenv.cfg");
    assert!(pyvenv.contains(".remembered.0\n"), "{pyvenv}");
    let pyvenv = fs::read_to_string(one.join("venv/pyvenv.cfg")).expect("pyvenv.cfg");
    assert!(!pyvenv.contains("remembered"), "{pyvenv}");

    // A shared wheel's file: one inode, in the store and seen through both venvs. The
    // first venv, which unpacked the entry, and the second both link the package's
    // directory (FORMAT.md 6.6, "Shared directories") and each file of the `.dist-info`.
    let flask = entry_of(root, "flask-").expect("flask is in the store");
    // The entry keeps the blocks digest of the wheel it was unpacked from, by which the
    // second app's copy was known again (FORMAT.md 6.1.1).
    let bundle = pyapp_bundle::reader::Bundle::open(&bundles()[HELLO].path, &Default::default())
        .expect("open the bundle");
    let digest = bundle
        .blocks_digest("deps/flask-3.0.3-py3-none-any.whl")
        .expect("verified");
    assert_eq!(
        fs::read_to_string(flask.join("blocks.blake3")).expect("blocks.blake3"),
        format!("{}\n", hex::encode(digest))
    );
    let stored = identity(&flask.join("files/flask/app.py"));
    assert_eq!(identity(&site1.join("flask/app.py")), stored);
    assert_eq!(identity(&site2.join("flask/app.py")), stored);
    assert_eq!(stored.2, 1, "the store's file, no venv's hard link");
    for site in [&site1, &site2] {
        let link = fs::read_link(site.join("flask")).expect("the venv links flask/");
        assert!(link.is_relative(), "{}", link.display());
        assert_eq!(
            fs::canonicalize(site.join("flask")).expect("resolve"),
            fs::canonicalize(flask.join("files/flask")).expect("resolve")
        );
    }
    // A wheel whose RECORD names no venv (no launcher): the second app links its whole
    // `.dist-info` from the entry, which it keeps in use by a link to its index.
    let blinker = entry_of(root, "blinker-").expect("blinker is in the store");
    let dist_info = "blinker-1.9.0.dist-info";
    assert!(fs::symlink_metadata(site1.join(dist_info))
        .expect("stat")
        .is_dir());
    assert!(fs::symlink_metadata(site2.join(dist_info))
        .expect("stat")
        .is_symlink());
    assert_eq!(
        fs::canonicalize(site2.join(dist_info)).expect("resolve"),
        fs::canonicalize(blinker.join("files").join(dist_info)).expect("resolve")
    );
    let sha = blinker.file_name().expect("sha256");
    let marker = two.join("venv/.pyapp-store-entries").join(sha);
    assert_eq!(identity(&marker).1, identity(&blinker.join("index.json")).1);
    let record = fs::read_to_string(site2.join(dist_info).join("RECORD")).expect("RECORD");
    assert!(record.contains("blinker/__init__.py,sha256="), "{record}");

    let metadata = identity(&flask.join("files/flask-3.0.3.dist-info/METADATA"));
    assert_eq!(
        identity(&site2.join("flask-3.0.3.dist-info/METADATA")),
        metadata
    );
    assert_eq!(metadata.2, 3, "the store's file and two venvs' links");
    let meta = fs::metadata(flask.join("files/flask/app.py")).expect("stat");
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid()),
        (0o644, 0),
        "read-only, root's"
    );

    // The local wheel is copied into each venv and is not in the store.
    assert!(entry_of(root, "PyYAML-").is_none(), "pyyaml is local");
    let (yaml1, yaml2) = (
        identity(&site1.join("yaml/__init__.py")),
        identity(&site2.join("yaml/__init__.py")),
    );
    assert_ne!(yaml1.1, yaml2.1);
    assert_eq!((yaml1.2, yaml2.2), (1, 1));

    // What is written per venv is never a link: rewritten scripts, launchers, INSTALLER,
    // RECORD.
    let docutils = entry_of(root, "docutils-").expect("docutils is in the store");
    let placeholder = docutils.join("files/docutils-0.20.1.data/scripts/rst2html.py");
    assert!(fs::read_to_string(&placeholder)
        .expect("read")
        .starts_with("#!python\n"));
    for release in [&one, &two] {
        let script = release.join("venv/bin/rst2html.py");
        let text = fs::read_to_string(&script).expect("read the script");
        let runtime = Path::new("/").join(release.strip_prefix(root).expect("under root"));
        assert!(
            text.starts_with(&format!("#!{}/venv/bin/python\n", runtime.display())),
            "{text}"
        );
        for own in [
            script,
            release.join("venv/bin/flask"),
            release.join("venv/bin/hello"),
        ] {
            assert_eq!(identity(&own).2, 1, "{}", own.display());
        }
    }
    for site in [&site1, &site2] {
        for own in ["RECORD", "INSTALLER"] {
            let path = site.join("flask-3.0.3.dist-info").join(own);
            assert_eq!(identity(&path).2, 1, "{}", path.display());
        }
    }
    check_works(root, "hello", HELLO);
    check_works(root, "hello2", HELLO2);
}

#[test]
fn gc_deletes_only_what_no_release_uses_after_remove_and_prune_and_never_while_installing() {
    let root = tempfile::tempdir().expect("temp root");
    let root = root.path();
    install(root, HELLO);
    install(root, HELLO2);
    let all = entries(root);
    let nothing = json(root, &["gc", "--dry-run"]);
    assert_eq!(nothing["removed"], serde_json::json!([]));
    assert_eq!(nothing["kept"], all.len());

    // Upgrades: the third prunes 1.0.0, whose own wheel no other release has.
    install(root, 1);
    let own = entry_of(root, "hello-1.0.0-").expect("hello 1.0.0's own wheel");
    let said = install(root, 2);
    assert!(
        said.contains("freed 1 unused wheel(s) from the store"),
        "{said}"
    );
    assert!(!own.exists(), "the pruned release's own wheel is gone");
    assert!(entry_of(root, "flask-").is_some(), "shared wheels stay");

    // While an install holds the store (shared), gc refuses and `remove` leaves it be.
    let lock = fs::File::open(store(root).join("lock")).expect("open the store lock");
    lock.lock_shared().expect("hold the store like an install");
    let refused = pyapp_install(root, &["gc"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("is in use by another pyapp-install"),
        "{}",
        stderr(&refused)
    );
    let before = entries(root);
    let removed = pyapp_install(root, &["remove", "hello2"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert_eq!(
        entries(root),
        before,
        "nothing collected while the store is held"
    );
    lock.unlock().expect("let go of the store");

    // hello2's own wheel is now unused: a dry run lists it and deletes nothing.
    let hello2 = entry_of(root, "hello2-").expect("hello2's own wheel");
    let unchanged = listing(&store(root));
    let dry = json(root, &["gc", "--dry-run"]);
    assert_eq!(
        listing(&store(root)),
        unchanged,
        "a dry run deletes nothing"
    );
    assert_eq!(dry["action"], "would-collect");
    let listed = dry["removed"].as_array().expect("removed");
    assert_eq!(listed.len(), 1, "{dry}");
    assert_eq!(
        listed[0]["sha256"].as_str(),
        hello2.file_name().and_then(|n| n.to_str())
    );
    assert!(listed[0]["wheel"]
        .as_str()
        .expect("wheel")
        .starts_with("hello2-1.0.0-"));
    assert!(dry["removed-bytes"].as_u64().expect("bytes") > 0);

    let done = json(root, &["gc"]);
    assert_eq!(done["action"], "collected");
    assert_eq!(done["removed"], dry["removed"]);
    assert!(!hello2.exists());
    check_works(root, "hello", 2);

    // Removing the last app frees everything.
    let last = pyapp_install(root, &["remove", "hello"]);
    assert!(last.status.success(), "{}", stderr(&last));
    assert_eq!(entries(root), Vec::<String>::new());
    assert_eq!(
        fs::read_dir(store(root).join("tmp")).expect("tmp").count(),
        0
    );
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(dir: &Path) -> Result<Mounted, String> {
        fs::create_dir_all(dir).expect("mkdir the mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512m,mode=0755", "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|err| format!("mount: {err}"))?;
        match output.status.success() {
            true => Ok(Mounted(dir.to_owned())),
            false => Err(stderr(&output)),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_store_on_another_filesystem_is_copied_from_and_said_once() {
    let root = tempfile::tempdir().expect("temp root");
    let root = root.path();
    let app_dir = root.join("applications/hello2");
    let _mounted = match Mounted::tmpfs(&app_dir) {
        Ok(mounted) => mounted,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs ({why})");
            return;
        }
    };
    install(root, HELLO);
    let said = install(root, HELLO2);
    let note = "is on another filesystem than";
    assert_eq!(said.matches(note).count(), 1, "{said}");
    assert!(
        said.contains("shared wheels were copied into the venv, not hard-linked"),
        "{said}"
    );
    let (_, site) = release(root, "hello2");
    let copied = identity(&site.join("flask/app.py"));
    let stored = identity(
        &entry_of(root, "flask-")
            .expect("flask")
            .join("files/flask/app.py"),
    );
    assert_ne!(copied.0, stored.0, "another filesystem");
    assert_eq!(copied.2, 1, "a copy");
    assert_eq!(stored.2, 1, "the store's only: hello's venv links flask/");
    check_works(root, "hello2", HELLO2);
}
