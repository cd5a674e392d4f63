//! Signed bundles end to end: `pyapp-build keygen`, `pyapp-build --sign`, the real Debian
//! `minisign -V` verifying the extracted manifest, and `pyapp-install` with a trust
//! configuration (`--trusted-key`, `APPS/.pyapp-trusted-keys/`) installing what a trusted
//! key signed and refusing, before writing anything, what it did not.

use std::fs;
use std::io::{Cursor, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pyapp_bundle::manifest::{Manifest, ManifestEntry};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipArchive, ZipWriter};

use crate::harness::{self, bin, fixture_copy, listing, pyapp_build, stderr};

/// A key pair made by `pyapp-build keygen --no-password`.
struct Keys {
    dir: TempDir,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().expect("temp key dir");
        let output = keygen(dir.path(), &["--no-password"], None);
        assert!(output.status.success(), "keygen: {}", stderr(&output));
        Keys { dir }
    }

    fn secret(&self) -> PathBuf {
        self.dir.path().join("pyapp.key")
    }

    fn public(&self) -> PathBuf {
        self.dir.path().join("pyapp.pub")
    }

    /// The key id, from the public key's comment line.
    fn id(&self) -> String {
        key_id(&self.public())
    }
}

fn key_id(public: &Path) -> String {
    let text = fs::read_to_string(public).expect("read public key");
    let comment = text.lines().next().expect("comment line");
    comment
        .rsplit(' ')
        .next()
        .expect("key id")
        .trim()
        .to_owned()
}

fn keygen(dir: &Path, extra: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(bin("pyapp-build"));
    command.args(["keygen", "-o"]).arg(dir).args(extra);
    match password {
        Some(password) => command.env("PYAPP_SIGNING_PASSWORD", password),
        None => command.env_remove("PYAPP_SIGNING_PASSWORD"),
    };
    command.output().expect("run pyapp-build keygen")
}

/// Builds `fixtures/hello` 1.0.0 into `out`, signed with `key` if given.
fn build(out: &Path, key: Option<&Path>) -> PathBuf {
    let project = fixture_copy("hello");
    let mut extra = Vec::new();
    if let Some(key) = key {
        extra.push("--sign");
        extra.push(key.to_str().expect("utf-8 key path"));
    }
    let output = pyapp_build(project.path(), out, &extra);
    assert!(output.status.success(), "pyapp-build: {}", stderr(&output));
    PathBuf::from(String::from_utf8(output.stdout).expect("utf-8").trim())
}

/// The bundle's entries in archive order: name, data, Unix mode, stored.
fn entries(bundle: &Path) -> Vec<(String, Vec<u8>, u32, bool)> {
    let bytes = fs::read(bundle).expect("read bundle");
    let mut archive = ZipArchive::new(Cursor::new(bytes)).expect("bundle is a zip");
    (0..archive.len())
        .map(|index| {
            let mut file = archive.by_index(index).expect("entry");
            let mut data = Vec::new();
            file.read_to_end(&mut data).expect("read entry");
            (
                file.name().expect("utf-8 name").into_owned(),
                data,
                file.unix_mode().expect("unix mode"),
                file.compression() == CompressionMethod::Stored,
            )
        })
        .collect()
}

/// Writes `entries` as a bundle the way pyapp-build does (same order, modes and methods).
fn reassemble(path: &Path, entries: &[(String, Vec<u8>, u32, bool)]) {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data, mode, stored) in entries {
        let method = if *stored {
            CompressionMethod::Stored
        } else {
            CompressionMethod::Deflated
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .system(System::Unix)
            .external_attributes(*mode << 16)
            .last_modified_time(DateTime::DEFAULT);
        zip.start_file(name.as_str(), options).expect("start entry");
        zip.write_all(data).expect("write entry");
    }
    let bytes = zip.finish().expect("finish zip").into_inner();
    fs::write(path, bytes).expect("write bundle");
}

/// Whether the real `minisign` is installed; says so when it is not.
fn minisign_installed() -> bool {
    let found = Command::new("minisign").arg("-v").output().is_ok();
    if !found {
        eprintln!("skipped: `minisign` is not installed (.ci/run installs the Debian package)");
    }
    found
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Installs `bundle` with `args` and checks it is refused: exit 1, exactly the lines
/// `error: MESSAGE` and a `hint:`, and `root` byte-identical to what it was.
fn assert_refused(root: &Path, args: &[&str], bundle: &Path, message: &str) {
    let before = listing(root);
    let mut all = args.to_vec();
    all.push(path_str(bundle));
    let output = harness::pyapp_install_at(root, &all);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "one error and one hint: {err}");
    assert_eq!(lines[0], format!("error: {message}"));
    assert!(lines[1].starts_with("hint: "), "{err}");
    assert_eq!(listing(root), before, "nothing was written");
}

#[test]
fn keygen_writes_a_private_key_pair_and_never_replaces_it_without_force() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = keygen(dir.path(), &["--no-password"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let public = dir.path().join("pyapp.pub");
    let secret = dir.path().join("pyapp.key");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        public.display().to_string(),
        "stdout is the public key's path"
    );
    let mode = |path: &Path| fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&secret), 0o600);
    assert_eq!(mode(&public), 0o644);
    let id = key_id(&public);
    assert_eq!(id.len(), 16, "{id}");
    assert!(stderr(&output).contains(&format!("key {id}: ")));

    let before = listing(dir.path());
    let again = keygen(dir.path(), &["--no-password"], None);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again).lines().next(),
        Some(
            format!(
                "error: {} exists: pass --force to replace the key pair (bundles signed with the old key then verify only with the old pyapp.pub)",
                secret.display()
            )
            .as_str()
        )
    );
    assert_eq!(listing(dir.path()), before, "the old pair is untouched");

    let forced = keygen(dir.path(), &["--no-password", "--force"], None);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(key_id(&public), id, "--force made a new key pair");
    assert_eq!(mode(&secret), 0o600);
    assert_eq!(
        fs::read_dir(dir.path()).expect("list").count(),
        2,
        "no leftovers"
    );
}

#[test]
fn a_signed_bundle_verifies_with_the_real_minisign() {
    let keys = Keys::new();
    let out = tempfile::tempdir().expect("temp out");
    let bundle = build(out.path(), Some(&keys.secret()));
    let entries = entries(&bundle);
    let names: Vec<&str> = entries.iter().map(|(name, ..)| name.as_str()).collect();
    assert_eq!(
        &names[..3],
        [
            "manifest.json",
            "manifest.json.minisig",
            "configuration.yaml"
        ]
    );
    let manifest = &entries[0].1;
    let signature = String::from_utf8(entries[1].1.clone()).expect("utf-8 signature");
    let listed = String::from_utf8(manifest.clone()).expect("utf-8 manifest");
    assert!(!listed.contains("minisig"), "the signature is not listed");
    let trusted = format!(
        "pyapp bundle hello-1.0.0.pyapp manifest-sha256:{}",
        hex::encode(Sha256::digest(manifest))
    );
    assert!(
        signature.contains(&format!("\ntrusted comment: {trusted}\n")),
        "{signature}"
    );

    if !minisign_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("manifest.json"), manifest).expect("write manifest");
    fs::write(dir.path().join("manifest.json.minisig"), &signature).expect("write signature");
    let verify = |public: &Path| {
        Command::new("minisign")
            .arg("-V")
            .arg("-p")
            .arg(public)
            .args(["-m", "manifest.json", "-x", "manifest.json.minisig"])
            .current_dir(dir.path())
            .output()
            .expect("run minisign")
    };
    let output = verify(&keys.public());
    assert!(output.status.success(), "minisign -V: {}", stderr(&output));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(
        said.contains("Signature and comment signature verified"),
        "{said}"
    );
    assert!(
        said.contains(&format!("Trusted comment: {trusted}")),
        "{said}"
    );

    let other = Keys::new();
    assert!(
        !verify(&other.public()).status.success(),
        "another key does not verify"
    );
    fs::write(
        dir.path().join("manifest.json"),
        listed.replace("\"size\":", "\"size\": "),
    )
    .expect("change manifest");
    assert!(
        !verify(&keys.public()).status.success(),
        "a changed manifest does not verify"
    );
}

#[test]
fn signing_is_reproducible() {
    let keys = Keys::new();
    let first = tempfile::tempdir().expect("temp out");
    let second = tempfile::tempdir().expect("temp out");
    let a = fs::read(build(first.path(), Some(&keys.secret()))).expect("read");
    let b = fs::read(build(second.path(), Some(&keys.secret()))).expect("read");
    assert!(a == b, "two signed builds with the same key differ");
}

#[test]
fn a_password_protected_key_signs_with_the_password_from_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = keygen(dir.path(), &[], Some("correct horse"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("(encrypted; keep it private)"));
    let secret = dir.path().join("pyapp.key");
    let project = fixture_copy("hello");
    let out = tempfile::tempdir().expect("temp out");
    let sign = |password: &str| {
        crate::harness::pyapp_build_command(project.path(), out.path())
            .args(["--no-index", "--quiet", "--sign"])
            .arg(&secret)
            .env("PYAPP_SIGNING_PASSWORD", password)
            .output()
            .expect("run pyapp-build")
    };
    let wrong = sign("wrong");
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(
        stderr(&wrong).lines().next(),
        Some(
            format!(
                "error: {}: cannot use the secret key: wrong password for that key",
                secret.display()
            )
            .as_str()
        )
    );
    assert_eq!(
        fs::read_dir(out.path()).expect("list").count(),
        0,
        "nothing built"
    );
    let right = sign("correct horse");
    assert!(right.status.success(), "{}", stderr(&right));
    let bundle = PathBuf::from(String::from_utf8(right.stdout).expect("utf-8").trim());
    let root = tempfile::tempdir().expect("temp root");
    let public = dir.path().join("pyapp.pub");
    let output = harness::pyapp_install_at(
        root.path(),
        &[
            "--dry-run",
            "--trusted-key",
            path_str(&public),
            path_str(&bundle),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("signature: key {} (trusted: ", key_id(&public))));
}

#[test]
fn trusted_key_installs_what_it_signed_and_refuses_the_rest_before_writing() {
    let keys = Keys::new();
    let other = Keys::new();
    let out = tempfile::tempdir().expect("temp out");
    let signed = build(&out.path().join("signed"), Some(&keys.secret()));
    let by_other = build(&out.path().join("other"), Some(&other.secret()));
    let unsigned = build(&out.path().join("unsigned"), None);
    let id = keys.id();
    let public = keys.public();
    let trust = ["--trusted-key", path_str(&public)];

    // A tampered signature: one byte of the Ed25519 signature changed.
    let mut tampered_entries = entries(&signed);
    let text = String::from_utf8(tampered_entries[1].1.clone()).expect("utf-8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut line: Vec<char> = lines[1].chars().collect();
    line[40] = if line[40] == 'A' { 'B' } else { 'A' };
    lines[1] = line.into_iter().collect();
    tampered_entries[1].1 = format!("{}\n", lines.join("\n")).into_bytes();
    let tampered = out.path().join("tampered.pyapp");
    reassemble(&tampered, &tampered_entries);

    // Changed content with a recomputed manifest, the old signature kept.
    let mut changed_entries = entries(&signed);
    let script = changed_entries
        .iter()
        .position(|(name, ..)| name.starts_with("src/") && name.ends_with(".py"))
        .expect("a source file");
    changed_entries[script]
        .1
        .extend_from_slice(b"\nimport os; os.system('id')\n");
    let files: Vec<ManifestEntry> = changed_entries[2..]
        .iter()
        .map(|(name, data, ..)| ManifestEntry {
            path: name.clone(),
            sha256: Sha256::digest(data).into(),
            size: data.len() as u64,
        })
        .collect();
    changed_entries[0].1 = Manifest::new(files).expect("manifest").to_bytes();
    let changed = out.path().join("changed.pyapp");
    reassemble(&changed, &changed_entries);

    // The reassembly itself is faithful: unchanged entries give the bundle pyapp-build wrote.
    let copy = out.path().join("copy.pyapp");
    reassemble(&copy, &entries(&signed));
    assert!(fs::read(&copy).expect("read") == fs::read(&signed).expect("read"));

    let root = tempfile::tempdir().expect("temp root");
    let not_signed = |bundle: &Path| {
        format!(
            "{}: not signed, and this server requires signed bundles (trusted keys: {id})",
            bundle.display()
        )
    };
    let untrusted = |bundle: &Path, signer: &str| {
        format!(
            "{}: signature does not verify with any trusted key (signed with key {signer}; trusted keys: {id})",
            bundle.display()
        )
    };
    let other_id = other.id();
    for existing in ["an empty root", "hello 1.0.0 installed"] {
        assert_refused(root.path(), &trust, &unsigned, &not_signed(&unsigned));
        assert_refused(
            root.path(),
            &trust,
            &by_other,
            &untrusted(&by_other, &other_id),
        );
        assert_refused(root.path(), &trust, &tampered, &untrusted(&tampered, &id));
        assert_refused(root.path(), &trust, &changed, &untrusted(&changed, &id));
        if existing == "an empty root" {
            let mut args = trust.to_vec();
            args.push(path_str(&signed));
            let output = harness::pyapp_install_at(root.path(), &args);
            assert!(output.status.success(), "{}", stderr(&output));
            assert!(stderr(&output).contains(&format!("signature: key {id} (trusted: ")));
        }
    }
    let current = fs::read_link(root.path().join("applications/hello/current")).expect("current");
    assert!(current.to_string_lossy().starts_with("releases/1.0.0-"));
}

#[test]
fn the_keys_directory_is_a_trust_configuration() {
    let keys = Keys::new();
    let out = tempfile::tempdir().expect("temp out");
    let signed = build(&out.path().join("signed"), Some(&keys.secret()));
    let unsigned = build(&out.path().join("unsigned"), None);
    let root = tempfile::tempdir().expect("temp root");

    // Without trust configuration signatures are not required: a dry run of each passes.
    for bundle in [&signed, &unsigned] {
        let output = harness::pyapp_install_at(root.path(), &["--dry-run", path_str(bundle)]);
        assert!(output.status.success(), "{}", stderr(&output));
    }

    let dir = root.path().join("applications/.pyapp-trusted-keys");
    fs::create_dir_all(&dir).expect("mkdir keys dir");
    assert_refused(
        root.path(),
        &[],
        &signed,
        &format!(
            "{}: no key is trusted: `{}` holds no *.pub file",
            signed.display(),
            dir.display()
        ),
    );
    let key = dir.join("ci.pub");
    fs::copy(keys.public(), &key).expect("copy key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o666)).expect("chmod");
    assert_refused(
        root.path(),
        &[],
        &signed,
        &format!(
            "trusted keys: `{}` is writable by others (mode 0o666): whoever can change it decides what this server installs",
            key.display()
        ),
    );
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_refused(
        root.path(),
        &[],
        &unsigned,
        &format!(
            "{}: not signed, and this server requires signed bundles (trusted keys: {})",
            unsigned.display(),
            keys.id()
        ),
    );
    let output = harness::pyapp_install_at(root.path(), &[path_str(&signed)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!(
        "signature: key {} (trusted: {})",
        keys.id(),
        key.display()
    )));
    assert!(root.path().join("applications/hello/current").exists());
}
