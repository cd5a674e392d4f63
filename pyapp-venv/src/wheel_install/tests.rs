//! Installing hand-made wheels: layout, RECORD, launchers, and every refusal.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::str::FromStr;

use pep440_rs::VersionSpecifiers;
use zip::write::SimpleFileOptions;

use std::fs::{self, File};

use pyapp_bundle::wheel_name::WheelName;

use super::place::record_path;
use super::record::{HashAlgorithm, Hasher};
use super::*;
use crate::interpreter::Interpreter;

/// A wheel made of `files` plus METADATA, WHEEL and (unless the caller gives one) a
/// correct RECORD.
struct WheelSpec<'a> {
    file_name: &'a str,
    files: Vec<(&'a str, Vec<u8>, u32)>,
    wheel_version: &'a str,
    record: Option<String>,
}

impl<'a> WheelSpec<'a> {
    fn new(file_name: &'a str) -> Self {
        WheelSpec {
            file_name,
            files: Vec::new(),
            wheel_version: "1.0",
            record: None,
        }
    }

    fn file(mut self, name: &'a str, contents: &[u8]) -> Self {
        self.files.push((name, contents.to_vec(), 0o644));
        self
    }

    fn executable(mut self, name: &'a str, contents: &[u8]) -> Self {
        self.files.push((name, contents.to_vec(), 0o755));
        self
    }

    fn dist_info(&self) -> String {
        let name = WheelName::parse(self.file_name).unwrap();
        let stem = self.file_name.split('-').next().unwrap();
        format!("{stem}-{}.dist-info", name.version())
    }

    fn write(self, dir: &Path) -> PathBuf {
        let name = WheelName::parse(self.file_name).unwrap();
        let dist_info = self.dist_info();
        let mut files = self.files.clone();
        files.push((
            Box::leak(format!("{dist_info}/METADATA").into_boxed_str()),
            format!(
                "Metadata-Version: 2.1\nName: {}\nVersion: {}\n",
                name.name(),
                name.version()
            )
            .into_bytes(),
            0o644,
        ));
        files.push((
            Box::leak(format!("{dist_info}/WHEEL").into_boxed_str()),
            format!(
                "Wheel-Version: {}\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
                self.wheel_version
            )
            .into_bytes(),
            0o644,
        ));
        let record = self.record.unwrap_or_else(|| {
            let mut rows: Vec<RecordRow> = files
                .iter()
                .map(|(path, contents, _)| {
                    let mut h = Hasher::new(HashAlgorithm::Sha256);
                    h.update(contents);
                    RecordRow {
                        path: path.to_string(),
                        hash: Some(h.finish()),
                        size: Some(contents.len() as u64),
                    }
                })
                .collect();
            rows.push(RecordRow {
                path: format!("{dist_info}/RECORD"),
                hash: None,
                size: None,
            });
            record::write_record(&rows)
        });
        files.push((
            Box::leak(format!("{dist_info}/RECORD").into_boxed_str()),
            record.into_bytes(),
            0o644,
        ));
        let path = dir.join(self.file_name);
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        for (name, contents, mode) in files {
            zip.start_file(name, SimpleFileOptions::default().unix_permissions(mode))
                .unwrap();
            zip.write_all(&contents).unwrap();
        }
        zip.finish().unwrap();
        path
    }
}

fn venv(dir: &Path) -> Venv {
    let interpreter =
        Interpreter::find(None, &VersionSpecifiers::from_str(">=3.8").unwrap()).unwrap();
    Venv::create(&dir.join("venv"), &interpreter, &[] as &[String]).unwrap()
}

/// What `python -c code` of `venv` prints, once it succeeded.
fn run_python(venv: &Venv, code: &str) -> String {
    let output = Command::new(venv.python())
        .args(["-c", code])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn install(venv: &Venv, wheels: &[PathBuf]) -> Result<InstallReport, WheelInstallError> {
    install_wheels(venv, wheels, &InstallOptions::default(), &|| {})
}

fn demo_wheel(dir: &Path) -> PathBuf {
    WheelSpec::new("demo_pkg-1.0-py3-none-any.whl")
        .file(
            "demo_pkg/__init__.py",
            b"def main():\n    print('hello from demo')\n    return 3\n",
        )
        .file("demo_pkg/__pycache__/stale.cpython-311.pyc", b"junk")
        .executable("demo_pkg/tool.sh", b"#!/bin/sh\necho tool\n")
        .file(
            "demo_pkg-1.0.dist-info/entry_points.txt",
            b"[console_scripts]\ndemo = demo_pkg:main\n[other]\nx = y:z\n",
        )
        .file(
            "demo_pkg-1.0.data/scripts/demo-script",
            b"#!python\nimport demo_pkg\nprint('script', demo_pkg.__name__)\n",
        )
        .file("demo_pkg-1.0.data/headers/demo.h", b"int demo(void);\n")
        .file(
            "demo_pkg-1.0.data/data/share/demo/readme.txt",
            b"data file\n",
        )
        .write(dir)
}

#[test]
fn installs_every_part_of_a_wheel_where_it_belongs() {
    let dir = tempfile::tempdir().unwrap();
    let venv = venv(dir.path());
    let wheel = demo_wheel(dir.path());
    let count = std::sync::atomic::AtomicUsize::new(0);
    let report = install_wheels(&venv, &[wheel], &InstallOptions::default(), &|| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(count.into_inner(), 1);
    assert_eq!(report.wheels[0].name, "demo-pkg");
    let site = venv.purelib();
    let short = venv.interpreter().target.short_version();
    assert!(site.join("demo_pkg/__init__.py").is_file());
    assert!(!site.join("demo_pkg/__pycache__").exists());
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&site.join("demo_pkg/__init__.py")), 0o644);
    assert_eq!(mode(&site.join("demo_pkg/tool.sh")), 0o755);
    // Headers go under the normalised project name, as pip and uv put them, not the file
    // name's spelling `demo_pkg`.
    assert_eq!(
        fs::read_to_string(
            venv.root()
                .join(format!("include/site/python{short}/demo-pkg/demo.h"))
        )
        .unwrap(),
        "int demo(void);\n"
    );
    assert!(venv.root().join("share/demo/readme.txt").is_file());
    let script = venv.scripts_dir().join("demo-script");
    assert_eq!(mode(&script), 0o755);
    let text = fs::read_to_string(&script).unwrap();
    assert!(
        text.starts_with(&format!("#!{}\n", venv.python().display())),
        "{text}"
    );
    let run = |path: &Path| Command::new(path).output().unwrap();
    let out = run(&script);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "script demo_pkg\n");
    let out = run(&venv.scripts_dir().join("demo"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from demo\n");
    assert_eq!(out.status.code(), Some(3));
    assert!(!venv.scripts_dir().join("x").exists());

    let dist_info = site.join("demo_pkg-1.0.dist-info");
    assert_eq!(
        fs::read_to_string(dist_info.join("INSTALLER")).unwrap(),
        "pyapp\n"
    );
    let rows =
        record::parse_record(&fs::read_to_string(dist_info.join("RECORD")).unwrap()).unwrap();
    let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    assert!(paths.contains(&"../../../bin/demo"), "{paths:?}");
    assert!(paths.contains(&"../../../bin/demo-script"), "{paths:?}");
    assert!(
        paths.contains(&"../../../share/demo/readme.txt"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"demo_pkg-1.0.dist-info/RECORD"),
        "{paths:?}"
    );
    for row in &rows {
        let path = site.join(&row.path);
        match &row.hash {
            None => assert_eq!(row.path, "demo_pkg-1.0.dist-info/RECORD"),
            Some(hash) => {
                let bytes = fs::read(&path).unwrap();
                let mut h = Hasher::new(hash.algorithm);
                h.update(&bytes);
                assert_eq!(&h.finish(), hash, "{}", row.path);
                assert_eq!(row.size, Some(bytes.len() as u64));
            }
        }
    }
}

fn error_of(venv: &Venv, wheels: &[PathBuf]) -> String {
    install(venv, wheels).unwrap_err().to_string()
}

/// A wheel whose RECORD was made for `B = 2` but which holds `A = 1`.
fn tampered_wheel(dir: &Path) -> PathBuf {
    let other = tempfile::tempdir().unwrap();
    let reference = WheelSpec::new("x-1.0-py3-none-any.whl")
        .file("x/__init__.py", b"B = 2\n")
        .write(other.path());
    let mut archive = zip::ZipArchive::new(File::open(reference).unwrap()).unwrap();
    let mut record = String::new();
    archive
        .by_name("x-1.0.dist-info/RECORD")
        .unwrap()
        .read_to_string(&mut record)
        .unwrap();
    let mut spec = WheelSpec::new("x-1.0-py3-none-any.whl").file("x/__init__.py", b"A = 1\n");
    spec.record = Some(record);
    spec.write(dir)
}

#[test]
fn a_changed_file_is_caught_while_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = tampered_wheel(dir.path());
    let venv = venv(dir.path());
    assert_eq!(
        error_of(&venv, &[wheel]),
        "x-1.0-py3-none-any.whl: RECORD: hash mismatch for x/__init__.py"
    );
}

/// `wheel` with `patch` applied to the bytes of the entry `name`, given the offsets of
/// its local header and of its central directory record.
fn patch_entry(wheel: &Path, name: &str, patch: impl Fn(&mut Vec<u8>, usize, usize)) {
    let mut bytes = fs::read(wheel).unwrap();
    let central = (0..bytes.len() - 46)
        .find(|&at| {
            u32_at(&bytes, at) == 0x0201_4b50
                && bytes[at + 46..].starts_with(name.as_bytes())
                && u16_at(&bytes, at + 28) == name.len()
        })
        .unwrap();
    let local = u32_at(&bytes, central + 42) as usize;
    patch(&mut bytes, local, central);
    fs::write(wheel, bytes).unwrap();
}

/// The little-endian u16 at `at` of `bytes`.
fn u16_at(bytes: &[u8], at: usize) -> usize {
    u16::from_le_bytes([bytes[at], bytes[at + 1]]).into()
}

/// The little-endian u32 at `at` of `bytes`.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Sets the u32 at `offsets` of `bytes` to `value`.
fn put_u32(bytes: &mut [u8], offsets: &[usize], value: u32) {
    for &at in offsets {
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
}

#[test]
fn an_entry_that_disagrees_with_its_archive_is_refused_small_or_large() {
    let dir = tempfile::tempdir().unwrap();
    // Small files are inflated whole, one of 5 MiB is streamed: both check the same.
    let large: Vec<u8> = (0..5u32 << 20).map(|i| (i % 251) as u8).collect();
    for (case, contents) in [("small", b"A = 1\n".repeat(100)), ("large", large)] {
        let make = |sub: &str| {
            let at = dir.path().join(format!("{case}-{sub}"));
            fs::create_dir(&at).unwrap();
            let wheel = WheelSpec::new("x-1.0-py3-none-any.whl")
                .file("x/data.bin", &contents)
                .write(&at);
            (wheel, venv(&at))
        };
        let (wheel, venv) = make("fine");
        install(&venv, &[wheel]).unwrap();
        assert_eq!(
            fs::read(venv.purelib().join("x/data.bin")).unwrap(),
            contents
        );

        let (wheel, venv) = make("crc");
        patch_entry(&wheel, "x/data.bin", |bytes, local, central| {
            put_u32(bytes, &[local + 14, central + 16], 0x1234_5678)
        });
        let err = error_of(&venv, &[wheel]);
        assert!(
            err.starts_with("x-1.0-py3-none-any.whl: entry `x/data.bin`"),
            "{case}: {err}"
        );
        assert!(
            err.contains("CRC") || err.contains("checksum"),
            "{case}: {err}"
        );

        let size = contents.len() as u32;
        for (sub, declared) in [("shorter", size - 1), ("longer", size + 1)] {
            let (wheel, venv) = make(sub);
            patch_entry(&wheel, "x/data.bin", |bytes, local, central| {
                put_u32(bytes, &[local + 22, central + 24], declared)
            });
            let err = error_of(&venv, &[wheel]);
            assert!(
                err.starts_with("x-1.0-py3-none-any.whl: entry `x/data.bin`"),
                "{case} {sub}: {err}"
            );
            assert!(err.contains("declare"), "{case} {sub}: {err}");
        }

        let (wheel, venv) = make("garbled");
        patch_entry(&wheel, "x/data.bin", |bytes, local, _| {
            // The data follows the local header, its name and its extra field.
            let data = local + 30 + u16_at(bytes, local + 26) + u16_at(bytes, local + 28);
            bytes[data..data + 8].copy_from_slice(&[0xff; 8]);
        });
        let err = error_of(&venv, &[wheel]);
        assert!(
            err.starts_with("x-1.0-py3-none-any.whl: entry `x/data.bin`"),
            "{case}: {err}"
        );
    }
}

#[test]
fn verification_can_be_turned_off_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = tampered_wheel(dir.path());
    let venv = venv(dir.path());
    let options = InstallOptions {
        verify_record: false,
        compile_bytecode: None,
    };
    install_wheels(&venv, &[wheel], &options, &|| {}).unwrap();
    assert_eq!(
        fs::read_to_string(venv.purelib().join("x/__init__.py")).unwrap(),
        "A = 1\n"
    );
}

#[test]
fn a_record_row_without_hash_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = WheelSpec::new("x-1.0-py3-none-any.whl").file("x/__init__.py", b"");
    spec.record = Some("x/__init__.py,,\nx-1.0.dist-info/RECORD,,\n".into());
    let wheel = spec.write(dir.path());
    let venv = venv(dir.path());
    assert_eq!(
        error_of(&venv, &[wheel]),
        "x-1.0-py3-none-any.whl: RECORD: no hash for x/__init__.py"
    );
    assert!(!venv.purelib().join("x").exists());
}

#[test]
fn the_same_file_from_two_wheels_is_a_conflict_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let a = WheelSpec::new("a-1.0-py3-none-any.whl")
        .file("shared/__init__.py", b"")
        .write(dir.path());
    let b = WheelSpec::new("b-2.0-py3-none-any.whl")
        .file("shared/__init__.py", b"")
        .write(dir.path());
    let venv = venv(dir.path());
    let err = error_of(&venv, &[a, b]);
    assert!(err.contains("shared/__init__.py` would be written by both a-1.0-py3-none-any.whl (shared/__init__.py) and b-2.0-py3-none-any.whl (shared/__init__.py)"), "{err}");
    assert!(
        !venv.purelib().join("shared").exists(),
        "nothing is written on a conflict"
    );
}

#[test]
fn an_entry_point_and_a_data_script_of_the_same_name_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = WheelSpec::new("a-1.0-py3-none-any.whl")
        .file("a/__init__.py", b"def main(): pass\n")
        .file(
            "a-1.0.dist-info/entry_points.txt",
            b"[console_scripts]\ntool = a:main\n",
        )
        .file("a-1.0.data/scripts/tool", b"#!python\n")
        .write(dir.path());
    let venv = venv(dir.path());
    let err = error_of(&venv, &[wheel]);
    assert!(err.contains("would be written by both a-1.0-py3-none-any.whl (a-1.0.data/scripts/tool) and a-1.0-py3-none-any.whl (entry point `tool`)"), "{err}");
}

#[test]
fn wheels_may_not_overwrite_the_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let venv = venv(dir.path());
    let short = venv.interpreter().target.short_version();
    let entry_points = format!("[console_scripts]\npython{short} = a:main\n");
    let by_entry_point = WheelSpec::new("a-1.0-py3-none-any.whl")
        .file("a/__init__.py", b"")
        .file("a-1.0.dist-info/entry_points.txt", entry_points.as_bytes())
        .write(dir.path());
    let err = error_of(&venv, &[by_entry_point]);
    assert!(
        err.contains(&format!(
            "entry point `python{short}`) would overwrite the venv's interpreter"
        )),
        "{err}"
    );
    let by_data = WheelSpec::new("b-1.0-py3-none-any.whl")
        .file("b-1.0.data/data/bin/python3", b"#!/bin/sh\n")
        .write(dir.path());
    let err = error_of(&venv, &[by_data]);
    assert!(
        err.contains("b-1.0.data/data/bin/python3) would overwrite the venv's interpreter"),
        "{err}"
    );
}

#[test]
fn unsafe_entries_are_refused() {
    let cases: [(&str, &str); 4] = [
        ("../evil.py", "`..` path component"),
        ("/etc/evil.py", "absolute path"),
        ("x\\evil.py", "backslash in name"),
        ("x/\u{1b}evil.py", "control character"),
    ];
    for (entry, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        let wheel = WheelSpec::new("x-1.0-py3-none-any.whl")
            .file(entry, b"")
            .write(dir.path());
        let venv = venv(dir.path());
        let err = error_of(&venv, &[wheel]);
        assert!(
            err.starts_with("x-1.0-py3-none-any.whl: entry `"),
            "{entry}: {err}"
        );
        assert!(err.contains(message), "{entry}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x-1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
    zip.add_symlink("x/link", "/etc/passwd", SimpleFileOptions::default())
        .unwrap();
    zip.finish().unwrap();
    let venv = venv(dir.path());
    let err = error_of(&venv, &[path]);
    assert_eq!(err, "x-1.0-py3-none-any.whl: entry `x/link`: symbolic link");
}

#[test]
fn wheel_metadata_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let venv = venv(dir.path());
    let mut future = WheelSpec::new("f-1.0-py3-none-any.whl").file("f.py", b"");
    future.wheel_version = "2.0";
    let err = error_of(&venv, &[future.write(dir.path())]);
    assert!(
        err.contains("f-1.0.dist-info/WHEEL: unsupported Wheel-Version 2.0"),
        "{err}"
    );

    let mut newer = WheelSpec::new("n-1.0-py3-none-any.whl").file("n.py", b"");
    newer.wheel_version = "1.9";
    let report = install(&venv, &[newer.write(dir.path())]).unwrap();
    assert!(
        report.warnings[0].contains("Wheel-Version 1.9 is newer"),
        "{:?}",
        report.warnings
    );

    let mismatched = WheelSpec::new("m-1.0-py3-none-any.whl")
        .file("other-1.0.dist-info/METADATA", b"Name: other\n")
        .write(dir.path());
    let err = error_of(&venv, &[mismatched]);
    assert!(err.contains("expected exactly one `.dist-info` directory for m 1.0, found m-1.0.dist-info, other-1.0.dist-info"), "{err}");

    let unlisted_dir = tempfile::tempdir().unwrap();
    let mut unlisted = WheelSpec::new("u-1.0-py3-none-any.whl")
        .file("u.py", b"")
        .file("extra.py", b"");
    unlisted.record = Some("u.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n".into());
    let err = error_of(&venv, &[unlisted.write(unlisted_dir.path())]);
    assert_eq!(
        err,
        "u-1.0-py3-none-any.whl: RECORD: extra.py is not listed"
    );

    let weird = WheelSpec::new("w-1.0-py3-none-any.whl")
        .file("w-1.0.data/lib/x", b"")
        .write(dir.path());
    let err = error_of(&venv, &[weird]);
    assert!(
        err.contains("unknown `.data` directory `lib` in w-1.0.data/lib/x"),
        "{err}"
    );
}

#[test]
fn wheels_for_other_platforms_are_all_listed() {
    let dir = tempfile::tempdir().unwrap();
    let venv = venv(dir.path());
    let ok = WheelSpec::new("ok-1.0-py3-none-any.whl")
        .file("ok.py", b"")
        .write(dir.path());
    let win = WheelSpec::new("w-1.0-cp311-cp311-win_amd64.whl")
        .file("w.py", b"")
        .write(dir.path());
    let mac = WheelSpec::new("m-1.0-py3-none-macosx_11_0_arm64.whl")
        .file("m.py", b"")
        .write(dir.path());
    let err = error_of(&venv, &[ok, win, mac]);
    assert!(err.starts_with("2 wheel(s) do not fit cpython 3."), "{err}");
    assert!(
        err.ends_with("w-1.0-cp311-cp311-win_amd64.whl, m-1.0-py3-none-macosx_11_0_arm64.whl"),
        "{err}"
    );
}

#[test]
fn record_paths_climb_out_of_site_packages() {
    assert_eq!(
        record_path(
            Path::new("/v/lib/python3.11/site-packages"),
            Path::new("/v/bin/flask")
        ),
        "../../../bin/flask"
    );
    assert_eq!(
        record_path(
            Path::new("/v/lib/python3.11/site-packages"),
            Path::new("/v/lib/python3.11/site-packages/a/b.py")
        ),
        "a/b.py"
    );
}

#[test]
fn bytecode_is_compiled_on_request_and_no_code_of_the_wheels_runs() {
    let dir = tempfile::tempdir().unwrap();
    let venv = venv(dir.path());
    let marker = dir.path().join("ran");
    let pth = format!(
        "import os; open({:?}, 'w').close()\n",
        marker.display().to_string()
    );
    let wheel = WheelSpec::new("c-1.0-py3-none-any.whl")
        .file("c/__init__.py", b"X = 1\n")
        .file("c/broken.py", b"def (:\n")
        .file("c/latin.py", b"# -*- coding: pyapp-evil -*-\nX = 2\n")
        .file("c.pth", pth.as_bytes())
        .file("sitecustomize.py", pth.as_bytes())
        .write(dir.path());
    let options = InstallOptions {
        verify_record: true,
        compile_bytecode: Some(|_: &mut Command| {}),
    };
    let report = install_wheels(&venv, &[wheel], &options, &|| {}).unwrap();
    assert!(
        !marker.exists(),
        "a .pth file or sitecustomize ran while compiling"
    );
    let cache = venv.purelib().join("c/__pycache__");
    let names: Vec<String> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("__init__.")),
        "{names:?}"
    );
    for broken in ["broken.py", "latin.py"] {
        assert!(
            report.warnings.iter().any(|w| w.contains(broken)),
            "{broken}: {:?}",
            report.warnings
        );
    }
    // The interpreter takes the bytecode as it is: loaded, not found stale and rewritten.
    let output = Command::new(venv.python())
        .args(["-S", "-v", "-c", "import c"])
        .env("PYTHONPATH", venv.purelib())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(
        said.lines()
            .any(|l| l.starts_with("# code object from") && l.contains("c/__pycache__/__init__.")),
        "{said}"
    );
}

/// What is made durable is what the writers listed, nothing walked: every directory of the
/// venv and of the new store entry, and every file there with a single link, is listed
/// (a debug build's check), whether the shared wheel is unpacked into the store first or
/// found there and linked, with a `#!python` script rewritten, a launcher, bytecode and
/// a local wheel beside it.
#[test]
fn everything_written_into_a_venv_or_the_store_is_listed_to_be_synced() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let interpreter =
        Interpreter::find(None, &VersionSpecifiers::from_str(">=3.8").unwrap()).unwrap();
    fs::create_dir(dir.path().join("apps")).unwrap();
    let store = crate::store::Store::of(&dir.path().join("apps"));
    let shared = demo_wheel(dir.path());
    let local = WheelSpec::new("c-1.0-py3-none-any.whl")
        .file("c/__init__.py", b"X = 1\n")
        .write(dir.path());
    let options = InstallOptions {
        verify_record: true,
        compile_bytecode: Some(|_: &mut Command| {}),
    };
    for name in ["first", "second"] {
        let root = dir.path().join(name);
        let to_sync = ToSync::new();
        let venv =
            Venv::create_staged(&root, &root, &interpreter, &[] as &[String], &to_sync).unwrap();
        let session = store.open_for_install().unwrap();
        let shared_placement = Placement::Shared {
            sha256: "d".repeat(64),
            link_dirs: true,
            blocks_digest: None,
        };
        let wheels = [(&shared, shared_placement), (&local, Placement::Local)]
            .into_iter()
            .map(|(path, placement)| WheelInput {
                file_name: display_name(path),
                bytes: WheelFile::open(path).unwrap(),
                placement,
            })
            .collect();
        install_from(&venv, wheels, Some(&session), &options, &to_sync, &|| {}).unwrap();
        to_sync.debug_assert_covers(&root);
        to_sync.sync().unwrap();
        let linked = fs::metadata(venv.purelib().join("demo_pkg/__init__.py")).unwrap();
        assert!(linked.nlink() > 1, "{name}: linked from the store");
    }
}

/// Installs `wheels` as shared ones (the sha256 of the N-th: N repeated) into a new venv
/// at `root` through `store`, checking that what was written is what was listed to sync.
fn install_shared(
    store: &crate::store::Store,
    root: &Path,
    wheels: &[PathBuf],
    link_dirs: bool,
) -> (Venv, InstallReport) {
    install_shared_with(store, root, wheels, link_dirs, &|| {})
}

/// [`install_shared`], calling `on_installed` as each wheel is in.
fn install_shared_with(
    store: &crate::store::Store,
    root: &Path,
    wheels: &[PathBuf],
    link_dirs: bool,
    on_installed: &(dyn Fn() + Sync),
) -> (Venv, InstallReport) {
    let interpreter =
        Interpreter::find(None, &VersionSpecifiers::from_str(">=3.8").unwrap()).unwrap();
    fs::create_dir_all(root.parent().unwrap()).unwrap();
    let to_sync = ToSync::new();
    let venv = Venv::create_staged(root, root, &interpreter, &[] as &[String], &to_sync).unwrap();
    let session = store.open_for_install().unwrap();
    let inputs = wheels
        .iter()
        .enumerate()
        .map(|(at, path)| WheelInput {
            file_name: display_name(path),
            bytes: WheelFile::open(path).unwrap(),
            placement: Placement::Shared {
                sha256: format!("{at}").repeat(64),
                link_dirs,
                blocks_digest: None,
            },
        })
        .collect();
    let options = InstallOptions::default();
    let report = install_from(
        &venv,
        inputs,
        Some(&session),
        &options,
        &to_sync,
        on_installed,
    )
    .unwrap();
    to_sync.debug_assert_covers(root);
    to_sync.sync().unwrap();
    (venv, report)
}

/// A venv of shared wheels gets one symbolic link for each directory a single wheel fills
/// from one place of its store entry (`share`), whether the store held the entry or the
/// install unpacked it: the package, each
/// wheel's part of a namespace package two wheels share; a directory filled from the
/// wheel's root and its `.data/purelib` at once, and every `.dist-info`, stay directories
/// of hard links, which keep the entries in use. The venv imports everything, its RECORD
/// lists the files behind the links, and what was written is what is listed to be synced.
#[test]
fn a_venv_links_the_directories_the_store_holds_whole() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    fs::create_dir(&apps).unwrap();
    let store = crate::store::Store::of(&apps);
    let wheels = [
        demo_wheel(dir.path()),
        WheelSpec::new("ns_one-1.0-py3-none-any.whl")
            .file("ns/one/__init__.py", b"ONE = 1\n")
            .file("ns/one/deep/x.py", b"X = 1\n")
            .write(dir.path()),
        WheelSpec::new("ns_two-1.0-py3-none-any.whl")
            .file("ns/two/__init__.py", b"TWO = 2\n")
            .write(dir.path()),
        WheelSpec::new("mix-1.0-py3-none-any.whl")
            .file("mix/__init__.py", b"")
            .file("mix-1.0.data/purelib/mix/b.py", b"B = 'b'\n")
            .write(dir.path()),
    ];
    let install = |name: &str, link_dirs: bool| {
        install_shared(&store, &apps.join(name).join("venv"), &wheels, link_dirs).0
    };
    let is_link = |path: PathBuf| fs::symlink_metadata(path).unwrap().is_symlink();

    // Unpacked by the first install, then held by the store for the second.
    let first = install("first", true);
    let second = install("second", true);
    for venv in [&first, &second] {
        for linked in ["demo_pkg", "ns/one", "ns/two"] {
            assert!(is_link(venv.purelib().join(linked)), "{linked} is a link");
        }
    }
    let lib = second.purelib();
    let target = fs::read_link(lib.join("demo_pkg")).unwrap();
    assert!(target.is_relative(), "{target:?}");
    assert_eq!(
        fs::canonicalize(lib.join(&target)).unwrap(),
        fs::canonicalize(store.entry_dir(&"0".repeat(64)).join("files/demo_pkg")).unwrap()
    );
    for real in ["ns", "mix", "demo_pkg-1.0.dist-info"] {
        assert!(!is_link(lib.join(real)), "{real} is a directory");
    }
    let metadata = fs::metadata(lib.join("demo_pkg-1.0.dist-info/METADATA")).unwrap();
    assert!(metadata.nlink() > 1, "METADATA is a hard link");
    let record = fs::read_to_string(lib.join("demo_pkg-1.0.dist-info/RECORD")).unwrap();
    assert!(record.contains("demo_pkg/__init__.py,sha256="), "{record}");
    assert!(record.contains("demo_pkg/tool.sh,sha256="), "{record}");
    for venv in [&first, &second] {
        let printed = run_python(
            venv,
            "import demo_pkg, ns.one.deep.x, ns.two, mix.b; print(ns.one.ONE + ns.two.TWO, mix.b.B)",
        );
        assert_eq!(printed, "3 b\n");
    }

    // Without the first venv, the second's hard links still keep every entry in use.
    fs::remove_dir_all(apps.join("first")).unwrap();
    let collected = store.collect_garbage(false, false).unwrap().unwrap();
    assert!(collected.removed.is_empty(), "{collected:?}");
    assert_eq!(collected.kept, wheels.len());

    let unlinked = install("third", false);
    assert!(!is_link(unlinked.purelib().join("demo_pkg")));
}

/// A wheel whose RECORD names nothing of the venv gets `INSTALLER` and `RECORD` as hard
/// links to the copies its store entry keeps (written when it was unpacked), the same
/// text a venv without the store is given; a wheel with launchers and a `#!python` script
/// gets its own, and its entry keeps none.
#[test]
fn a_record_that_names_no_venv_is_linked_from_the_store() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    fs::create_dir(&apps).unwrap();
    let store = crate::store::Store::of(&apps);
    let plain = WheelSpec::new("plain-1.0-py3-none-any.whl")
        .file("plain/__init__.py", b"P = 1\n")
        .file("plain-1.0.data/data/share/plain.txt", b"data\n")
        .write(dir.path());
    let wheels = [plain.clone(), demo_wheel(dir.path())];
    let first = install_shared(&store, &apps.join("first/venv"), &wheels, true).0;
    let second = install_shared(&store, &apps.join("second/venv"), &wheels, true).0;
    let alone = venv(dir.path());
    install(&alone, &[plain]).unwrap();

    let kept = |at: usize| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(store.entry_dir(&format!("{at}").repeat(64)))
            .unwrap()
            .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "files" && name != "index.json")
            .collect();
        names.sort();
        names
    };
    let plain_kept = kept(0);
    assert_eq!(plain_kept.len(), 2, "{plain_kept:?}");
    assert_eq!(plain_kept[0], "INSTALLER");
    assert!(plain_kept[1].starts_with("RECORD-"), "{plain_kept:?}");
    assert_eq!(kept(1), Vec::<String>::new(), "demo_pkg names the venv");

    let entry = store.entry_dir(&"0".repeat(64));
    let inode = |path: PathBuf| fs::metadata(path).unwrap().ino();
    for venv in [&first, &second] {
        let dist_info = venv.purelib().join("plain-1.0.dist-info");
        assert_eq!(
            inode(dist_info.join("RECORD")),
            inode(entry.join(&plain_kept[1]))
        );
        assert_eq!(
            inode(dist_info.join("INSTALLER")),
            inode(entry.join("INSTALLER"))
        );
        assert_eq!(
            fs::read_to_string(dist_info.join("RECORD")).unwrap(),
            fs::read_to_string(alone.purelib().join("plain-1.0.dist-info/RECORD")).unwrap()
        );
        for own in ["RECORD", "INSTALLER"] {
            let path = venv.purelib().join("demo_pkg-1.0.dist-info").join(own);
            assert_eq!(fs::metadata(path).unwrap().nlink(), 1, "demo_pkg's {own}");
        }
    }
    let record = fs::read_to_string(entry.join(&plain_kept[1])).unwrap();
    assert!(
        record.contains("../../../share/plain.txt,sha256="),
        "{record}"
    );
    assert!(
        record.contains("plain-1.0.dist-info/INSTALLER,sha256="),
        "{record}"
    );

    // The first venv unpacked the entry: a directory. The second links the entry's
    // `.dist-info`, whole, and keeps the entry in use by a link to its index.
    let is_link = |path: PathBuf| fs::symlink_metadata(path).unwrap().is_symlink();
    assert!(!is_link(first.purelib().join("plain-1.0.dist-info")));
    assert!(is_link(second.purelib().join("plain-1.0.dist-info")));
    assert!(!is_link(second.purelib().join("demo_pkg-1.0.dist-info")));
    let marker = second
        .root()
        .join(super::STORE_ENTRIES_DIR)
        .join("0".repeat(64));
    assert_eq!(inode(marker), inode(entry.join("index.json")));
    let printed = run_python(
        &second,
        "import importlib.metadata as m, plain; print(m.version('plain'), len(m.files('plain')), plain.P)",
    );
    assert_eq!(printed, "1.0 6 1\n");
    fs::remove_dir_all(apps.join("first")).unwrap();
    let collected = store.collect_garbage(false, false).unwrap().unwrap();
    assert!(collected.removed.is_empty(), "{collected:?}");
    fs::remove_dir_all(apps.join("second")).unwrap();
    let collected = store.collect_garbage(false, false).unwrap().unwrap();
    assert_eq!(collected.removed.len(), 2, "{collected:?}");
}

/// Two installs unpack the same wheel at once and the other publishes first: this one's
/// entry is dropped, its directory links point into the other's, and its hard links are
/// remade from that entry, so that the venv keeps in use the entry it links into, also
/// once the other venv is gone.
#[test]
fn a_venv_whose_new_entry_lost_the_race_links_the_one_published() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    fs::create_dir(&apps).unwrap();
    let store = crate::store::Store::of(&apps);
    let wheels = [demo_wheel(dir.path())];
    let other = std::sync::Once::new();
    // The other install runs to its end while this one links its files.
    let publish_first = || {
        other.call_once(|| {
            install_shared(&store, &apps.join("other").join("venv"), &wheels, true);
        })
    };
    let (venv, _) = install_shared_with(
        &store,
        &apps.join("this").join("venv"),
        &wheels,
        true,
        &publish_first,
    );
    assert!(other.is_completed());

    let metadata = venv.purelib().join("demo_pkg-1.0.dist-info/METADATA");
    let published = store
        .entry_dir(&"0".repeat(64))
        .join("files/demo_pkg-1.0.dist-info/METADATA");
    assert_eq!(
        fs::metadata(&metadata).unwrap().ino(),
        fs::metadata(&published).unwrap().ino(),
        "the venv's METADATA is the published entry's"
    );
    fs::remove_dir_all(apps.join("other")).unwrap();
    let collected = store.collect_garbage(false, false).unwrap().unwrap();
    assert!(collected.removed.is_empty(), "{collected:?}");
    run_python(&venv, "import demo_pkg; print(demo_pkg.main())");
    let leftovers = fs::read_dir(venv.purelib().join("demo_pkg-1.0.dist-info"))
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".pyapp-adopt")
        })
        .count();
    assert_eq!(leftovers, 0);
}

/// A system module linked into the venv (`system.python-modules`) is the system's: a wheel
/// with a file below its name is refused before anything is written, and nothing reaches
/// the system's directory through the link.
#[test]
fn a_wheel_cannot_write_through_a_linked_system_module() {
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("dist-packages");
    fs::create_dir_all(system.join("victim")).unwrap();
    fs::write(system.join("victim/__init__.py"), b"").unwrap();
    let venv = venv(dir.path());
    venv.link_system_modules(&system, &["victim"]).unwrap();
    let wheel = WheelSpec::new("evil-1.0-py3-none-any.whl")
        .file("evil/__init__.py", b"")
        .file("victim/planted.py", b"print('planted')\n")
        .write(dir.path());
    let err = install(&venv, &[wheel]).unwrap_err();
    assert!(
        err.to_string().contains("victim/planted.py")
            && err.to_string().contains("system module `victim`"),
        "{err}"
    );
    assert!(!system.join("victim/planted.py").exists());
    assert!(!venv.purelib().join("evil").exists(), "nothing written");
}

/// A venv on the store's filesystem but behind another mount (a bind mount: one device,
/// yet `link(2)` fails with EXDEV) gets copies of the files its links would have brought:
/// a link into an entry nothing hard-links would not keep it in use. Needs root (mount).
#[test]
fn a_venv_behind_another_mount_copies_instead_of_linking_directories() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    fs::create_dir(&apps).unwrap();
    let store = crate::store::Store::of(&apps);
    // `plain`'s RECORD names no venv: its `.dist-info` would be linked whole.
    let plain = WheelSpec::new("plain-1.0-py3-none-any.whl")
        .file("plain/__init__.py", b"P = 1\n")
        .write(dir.path());
    let wheels = [demo_wheel(dir.path()), plain];
    let install = |root: &Path| install_shared(&store, root, &wheels, true);
    install(&apps.join("first"));

    let (outside, mount_point) = (dir.path().join("outside"), apps.join("mounted"));
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(&mount_point).unwrap();
    let mounted = Command::new("mount")
        .arg("--bind")
        .arg(&outside)
        .arg(&mount_point)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount --bind (this test needs root)");
    let result = std::panic::catch_unwind(|| {
        let (venv, report) = install(&mount_point.join("venv"));
        let package = venv.purelib().join("demo_pkg");
        assert!(!fs::symlink_metadata(&package).unwrap().is_symlink());
        let copied = fs::metadata(package.join("__init__.py")).unwrap();
        assert_eq!(copied.nlink(), 1, "a copy");
        let dist_info = venv.purelib().join("plain-1.0.dist-info");
        assert!(fs::symlink_metadata(&dist_info).unwrap().is_dir());
        let record = fs::metadata(dist_info.join("RECORD")).unwrap();
        assert_eq!(record.nlink(), 1, "the venv's own RECORD, written");
        assert!(!venv.root().join(super::STORE_ENTRIES_DIR).exists());
        assert!(
            report.notes.iter().any(|n| n.contains("copied")),
            "{:?}",
            report.notes
        );
        run_python(&venv, "import demo_pkg; print(demo_pkg.main())");
    });
    let unmounted = Command::new("umount").arg(&mount_point).status().unwrap();
    assert!(unmounted.success());
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
