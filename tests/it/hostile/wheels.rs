//! Wheels that the bundle vouches for (manifest and metadata.yaml carry their new sha256)
//! but whose content the wheel installer must refuse: entries outside the venv, RECORD
//! mismatches, files that would replace the interpreter or another wheel's files.

use super::bundle::{record_row, wheel_files, wheel_of, Draft};
use super::{refused, Case};

const DIST_INFO: &str = "hello-1.0.0.dist-info";

/// The base bundle with the app's own wheel rebuilt from its files after `change`.
fn with_app_wheel(change: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> Vec<u8> {
    let mut draft = Draft::base();
    let name = draft.wheel_name("hello-");
    let mut files = wheel_files(draft.data(&name));
    change(&mut files);
    draft.replace_wheel(&name, wheel_of(&files));
    draft.to_bytes()
}

/// Adds `path` with `data` to a wheel's files and its RECORD (with the right hash, so
/// the path is what is wrong).
fn add_recorded(files: &mut Vec<(String, Vec<u8>)>, path: &str, data: &[u8]) {
    let record = format!("{DIST_INFO}/RECORD");
    let at = files
        .iter()
        .position(|(name, _)| *name == record)
        .expect("a RECORD");
    let mut text = String::from_utf8(files[at].1.clone()).expect("utf-8 RECORD");
    text.insert_str(0, &format!("{}\n", record_row(path, data)));
    files[at].1 = text.into_bytes();
    files.insert(0, (path.to_owned(), data.to_vec()));
}

/// The content of a wheel file.
fn file<'a>(files: &'a mut [(String, Vec<u8>)], path: &str) -> &'a mut Vec<u8> {
    &mut files
        .iter_mut()
        .find(|(name, _)| name == path)
        .unwrap_or_else(|| panic!("{path} is not in the wheel"))
        .1
}

/// The base bundle asking for the system's `apt` module (linked into the venv from
/// /usr/lib/python3/dist-packages), its app wheel with a file below that name.
fn into_a_system_module() -> Vec<u8> {
    let mut draft = Draft::base();
    draft.metadata("  python-modules: []", "  python-modules: [apt]");
    let name = draft.wheel_name("hello-");
    let mut files = wheel_files(draft.data(&name));
    add_recorded(&mut files, "apt/planted.py", b"import os\n");
    draft.replace_wheel(&name, wheel_of(&files));
    draft.to_bytes()
}

pub fn cases() -> Vec<Case> {
    let wheel = "hello-1.0.0-py3-none-any.whl";
    let cron = b"* * * * * root id\n";
    vec![
        refused(
            "wheel-into-a-system-module",
            into_a_system_module(),
            format!("{wheel}: {wheel} (apt/planted.py) would be written into the system module `apt` linked into the venv (system.python-modules)"),
        ),
        refused(
            "wheel-entry-dotdot",
            with_app_wheel(|files| add_recorded(files, "../../../../../../etc/cron.d/pyapp", cron)),
            format!("{wheel}: entry `../../../../../../etc/cron.d/pyapp`: empty, `.` or `..` path component"),
        ),
        refused(
            "wheel-entry-line-break",
            with_app_wheel(|files| add_recorded(files, "hello/evil\nUser=root.py", cron)),
            format!("{wheel}: entry `hello/evil\\nUser=root.py`: control character in name"),
        ),
        refused(
            "wheel-entry-absolute",
            with_app_wheel(|files| add_recorded(files, "/etc/cron.d/pyapp", cron)),
            format!("{wheel}: entry `/etc/cron.d/pyapp`: absolute path"),
        ),
        refused(
            "wheel-data-scripts-escape",
            with_app_wheel(|files| {
                add_recorded(files, "hello-1.0.0.data/scripts/../../../../../etc/x", cron)
            }),
            format!("{wheel}: entry `hello-1.0.0.data/scripts/../../../../../etc/x`: empty, `.` or `..` path component"),
        ),
        refused(
            "wheel-record-hash-mismatch",
            with_app_wheel(|files| {
                let data = file(files, "hello/cli.py");
                let at = data.iter().position(|b| *b == b'h').expect("an h");
                data[at] = b'H';
            }),
            format!("{wheel}: RECORD: hash mismatch for hello/cli.py"),
        ),
        refused(
            "wheel-record-size-mismatch",
            with_app_wheel(|files| file(files, "hello/cli.py").extend_from_slice(b"\n")),
            format!("{wheel}: RECORD: size mismatch for hello/cli.py"),
        ),
        refused(
            "wheel-record-row-with-a-line-break",
            with_app_wheel(|files| {
                let record = file(files, &format!("{DIST_INFO}/RECORD"));
                let mut text = b"\"hello/evil\nUser=root.py\",sha256=AAAA,4\n".to_vec();
                text.extend_from_slice(record);
                *record = text;
            }),
            format!("{wheel}: RECORD: line 1: control character in a field"),
        ),
        refused(
            "wheel-file-not-in-record",
            with_app_wheel(|files| {
                files.insert(0, ("hello/evil.py".to_owned(), b"import os\n".to_vec()))
            }),
            format!("{wheel}: RECORD: hello/evil.py is not listed"),
        ),
        refused(
            "wheel-replaces-the-interpreter",
            with_app_wheel(|files| {
                add_recorded(files, "hello-1.0.0.data/scripts/python", b"#!/bin/sh\nid\n")
            }),
            format!("{wheel} (hello-1.0.0.data/scripts/python) would overwrite the venv's interpreter"),
        ),
        refused(
            "wheel-writes-another-wheels-file",
            with_app_wheel(|files| add_recorded(files, "flask/__init__.py", b"import os\n")),
            "flask/__init__.py` would be written by both",
        ),
        refused(
            "wheel-foreign-data-directory",
            with_app_wheel(|files| add_recorded(files, "evil-1.0.data/scripts/x", cron)),
            format!("{wheel}: unexpected top-level directory `evil-1.0.data`"),
        ),
        refused(
            "wheel-unknown-data-key",
            with_app_wheel(|files| add_recorded(files, "hello-1.0.0.data/root/x", cron)),
            format!("{wheel}: unknown `.data` directory `root`"),
        ),
        refused(
            "wheel-console-script-escapes-bin",
            with_app_wheel(|files| {
                let entry_points = file(files, &format!("{DIST_INFO}/entry_points.txt"));
                let text = String::from_utf8(entry_points.clone()).expect("utf-8");
                *entry_points = text
                    .replacen("hello =", "../../../../usr/bin/hello =", 1)
                    .into_bytes();
                let new = entry_points.clone();
                let record = file(files, &format!("{DIST_INFO}/RECORD"));
                let text = String::from_utf8(record.clone()).expect("utf-8");
                let row = text
                    .lines()
                    .find(|line| line.starts_with(&format!("{DIST_INFO}/entry_points.txt,")))
                    .expect("an entry_points row")
                    .to_owned();
                *record = text
                    .replace(
                        &row,
                        &record_row(&format!("{DIST_INFO}/entry_points.txt"), &new),
                    )
                    .into_bytes();
            }),
            format!("{wheel}: entry_points.txt line 2: `../../../../usr/bin/hello` is not a valid script name"),
        ),
        refused(
            "wheel-not-a-zip",
            {
                let mut draft = Draft::base();
                let name = draft.wheel_name("hello-");
                draft.replace_wheel(&name, b"#!/bin/sh\nid\n".to_vec());
                draft.to_bytes()
            },
            format!("{wheel}: not a valid zip archive"),
        ),
    ]
}

/// Issue 12, item 2: compiling bytecode runs nothing of the bundle. Its wheel ships a
/// `.pth` file and a `sitecustomize` that would leave a marker; the install compiles (the
/// `.pyc` files are there) and the marker never appears.
#[test]
fn compiling_bytecode_runs_no_pth_file_or_sitecustomize() {
    let work = tempfile::tempdir().expect("temp dir");
    let marker = work.path().join("ran-as-root");
    let payload = format!(
        "import os; open({:?}, 'w').write(str(os.getuid()))\n",
        marker.display().to_string()
    );
    let bundle = with_app_wheel(|files| {
        add_recorded(files, "hello-evil.pth", payload.as_bytes());
        add_recorded(files, "sitecustomize.py", payload.as_bytes());
    });
    let path = work.path().join("hello-pth.pyapp");
    std::fs::write(&path, bundle).expect("write the bundle");
    let root = work.path().join("root");
    std::fs::create_dir(&root).expect("mkdir root");
    let path = path.to_str().expect("utf-8 path");
    // The compiler runs as nobody: the interpreter must be one every user can run.
    let python = "/usr/bin/python3.11";
    let output =
        crate::harness::pyapp_install_at(&root, &["--compile-bytecode", "--python", python, path]);
    assert!(
        output.status.success(),
        "{}",
        crate::harness::stderr(&output)
    );
    let ran = std::fs::read_to_string(&marker).ok();
    assert_eq!(ran, None, "bundle code ran while compiling, as uid {ran:?}");
    let lib = root.join("applications/hello/current/venv/lib");
    let compiled = walkdir::WalkDir::new(&lib)
        .into_iter()
        .filter_map(Result::ok)
        .any(|entry| entry.path().ends_with("hello/__pycache__") && entry.file_type().is_dir());
    assert!(compiled, "no hello/__pycache__ under {}", lib.display());
}

/// Issue 12, item 4: a small bundle whose wheel holds 256 MiB of zeros is refused under a
/// 128 MiB `--max-installed-size`, before anything is written, with one line saying what
/// it needs, what is free and the limit.
#[test]
fn a_wheel_that_expands_beyond_the_limit_is_refused_before_anything_is_written() {
    let zeros = vec![0; 256 << 20];
    let bundle = with_app_wheel(|files| add_recorded(files, "hello/zeros.bin", &zeros));
    assert!(
        bundle.len() < 4 << 20,
        "the bundle is {} bytes",
        bundle.len()
    );
    let work = tempfile::tempdir().expect("temp dir");
    let path = work.path().join("hello-zeros.pyapp");
    std::fs::write(&path, bundle).expect("write the bundle");
    let root = work.path().join("root");
    std::fs::create_dir(&root).expect("mkdir root");
    let before = crate::harness::listing(&root);
    let path = path.to_str().expect("utf-8 path");
    let output = crate::harness::pyapp_install_at(&root, &["--max-installed-size", "128M", path]);
    let message = crate::harness::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 2, "{message}");
    assert!(
        lines[0].starts_with("error: refusing the bundle: installing it needs ")
            && lines[0].ends_with(" free, the limit (--max-installed-size) is 134.2 MB"),
        "{message}"
    );
    let needed: u64 = lines[0]
        .split_once(" (")
        .and_then(|(_, rest)| rest.split_once(" bytes)"))
        .and_then(|(bytes, _)| bytes.parse().ok())
        .unwrap_or_else(|| panic!("no byte count: {message}"));
    assert!(needed >= 256 << 20, "{message}");
    assert!(lines[1].contains("--max-installed-size"), "{message}");
    assert_eq!(crate::harness::listing(&root), before);
}

/// Issue 12: a pyapp-install killed while its bytecode compiler runs leaves no compiler
/// running (`PR_SET_PDEATHSIG`); the compiler runs as nobody and cannot be traced. The app wheel carries a module of a million lines, which
/// takes the compiler seconds: killed while it compiles, it must not finish (it would then
/// stop anyway, on the pipe nobody reads).
#[test]
fn a_killed_install_takes_its_bytecode_compiler_with_it() {
    let source = "x = 1\n".repeat(1_000_000);
    let bundle = with_app_wheel(|files| add_recorded(files, "hello/big.py", source.as_bytes()));
    let work = tempfile::tempdir().expect("temp dir");
    let path = work.path().join("hello-big.pyapp");
    std::fs::write(&path, bundle).expect("write the bundle");
    let root = work.path().join("root");
    std::fs::create_dir(&root).expect("mkdir root");
    let mut install = std::process::Command::new(crate::harness::bin("pyapp-install"))
        .arg("--root")
        .arg(&root)
        .args(["--compile-bytecode", "--python", "/usr/bin/python3.11"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start pyapp-install");
    // The compiler, a child of this pyapp-install: `python -m compileall` before issue 12,
    // the stdin compiler now.
    let parent = install.id().to_string();
    let compilers = || {
        let found = std::process::Command::new("pgrep")
            .args(["-P", &parent, "-f", "compileall|MAGIC_NUMBER"])
            .output()
            .expect("run pgrep");
        String::from_utf8_lossy(&found.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<String>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let running = loop {
        let running = compilers();
        if !running.is_empty() {
            break running;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the compiler never ran"
        );
        assert!(
            install.try_wait().expect("poll").is_none(),
            "pyapp-install ended before compiling"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // It compiles as nobody, and undumpable (its /proc files are root's), so that no other
    // process of nobody can trace it. Watched every few milliseconds until one is seen so
    // (one compiler a CPU, and one given small files may be done very soon); one seen as
    // nobody but dumpable all the while fails the test when the time is up.
    let guarded = |pid: &String| {
        use std::os::unix::fs::MetadataExt;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let uid = status
            .lines()
            .find(|line| line.starts_with("Uid:"))?
            .split_whitespace()
            .nth(1)?
            .to_owned();
        let fd_owner = std::fs::metadata(format!("/proc/{pid}/fd")).ok()?.uid();
        Some((uid, fd_owner))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let seen = loop {
        let seen = running.iter().filter_map(guarded).collect::<Vec<_>>();
        if seen.iter().any(|state| *state == ("65534".to_owned(), 0))
            || std::time::Instant::now() >= deadline
        {
            break seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(
        seen.iter().any(|state| *state == ("65534".to_owned(), 0)),
        "no compiler was seen running as nobody (65534) with its /proc files root's \
         (undumpable): (uid, owner of /proc/PID/fd) of those running: {seen:?}"
    );
    install.kill().expect("kill pyapp-install");
    install.wait().expect("reap pyapp-install");
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Gone, or a zombie its new parent has not reaped yet.
    let alive: Vec<&String> = running
        .iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z'))
            })
        })
        .collect();
    assert!(
        alive.is_empty(),
        "the compiler outlived pyapp-install: {alive:?}"
    );
}
