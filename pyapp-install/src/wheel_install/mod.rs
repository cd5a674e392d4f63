//! Installing wheels into a [`Venv`] natively: no pip, no `python -m installer`.
//!
//! Each wheel is first *planned* (zip and names validated, `.dist-info` found, `WHEEL`,
//! `RECORD` and `entry_points.txt` read, every entry mapped to its destination) without
//! writing anything; conflicts between wheels are found across all plans; then every wheel
//! is extracted entry by entry, hashed while it streams, checked against its RECORD, and
//! given launchers, `INSTALLER` and a RECORD of what was actually written.

pub mod entry_points;
pub mod record;
pub mod scripts;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use pyapp_bundle::wheel_name::{normalize_name, WheelName, WheelNameError};
use rayon::prelude::*;
use thiserror::Error;
use zip::ZipArchive;

use crate::venv::Venv;
use entry_points::{EntryPoint, EntryPointError};
use record::{HashAlgorithm, Hasher, RecordError, RecordHash, RecordRow};

/// The name written to each `.dist-info/INSTALLER`.
pub const INSTALLER_NAME: &str = "pyapp";

/// Small metadata files read whole are refused beyond this size.
const MAX_METADATA_FILE: u64 = 64 * 1024 * 1024;

/// The longest first line searched for a `#!python` placeholder.
const MAX_SHEBANG_LINE: u64 = 4096;

/// How to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallOptions {
    /// Check every file's size and hash against the wheel's RECORD (the spec requires it;
    /// turning it off is for wheels known to have bad RECORDs, and must be asked for).
    pub verify_record: bool,
    /// Compile bytecode with the venv's interpreter after all wheels are in.
    pub compile_bytecode: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            verify_record: true,
            compile_bytecode: false,
        }
    }
}

/// One wheel that was installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledWheel {
    /// The wheel's file name.
    pub wheel: String,
    /// The normalised distribution name.
    pub name: String,
    /// The version.
    pub version: String,
    /// Files written, launchers and `.dist-info` bookkeeping included.
    pub files: usize,
}

/// What [`install_wheels`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// The wheels, in the order given.
    pub wheels: Vec<InstalledWheel>,
    /// Things worth telling the user that did not stop the install (a newer minor
    /// `Wheel-Version`, files that did not compile to bytecode).
    pub warnings: Vec<String>,
}

/// Why the wheels could not be installed.
#[derive(Debug, Error)]
pub enum WheelInstallError {
    #[error("{wheel}: {problem}")]
    Wheel {
        wheel: String,
        problem: WheelProblem,
    },
    #[error("{count} wheel(s) do not fit {target}: {wheels}")]
    Incompatible {
        count: usize,
        target: String,
        wheels: String,
    },
    #[error("`{path}` would be written by both {first} and {second}")]
    Conflict {
        path: PathBuf,
        first: String,
        second: String,
    },
    #[error("failed to compile bytecode with `{python}`: {source}")]
    Compile { python: PathBuf, source: io::Error },
}

/// What is wrong with one wheel; shown after the wheel's file name.
#[derive(Debug, Error)]
pub enum WheelProblem {
    #[error(transparent)]
    Name(#[from] WheelNameError),
    #[error("failed to open `{path}`: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("not a valid zip archive: {0}")]
    Zip(zip::result::ZipError),
    #[error("entry `{entry}`: {reason}")]
    Entry { entry: String, reason: String },
    #[error("expected exactly one `.dist-info` directory for {expected}, found {found}")]
    DistInfo { expected: String, found: String },
    #[error("unexpected top-level directory `{0}`: only the wheel's own `.data` is allowed")]
    ForeignData(String),
    #[error("{file}: {reason}")]
    MetadataFile { file: String, reason: String },
    #[error("RECORD: {0}")]
    Record(#[from] RecordError),
    #[error("RECORD: {0} is not listed")]
    NotInRecord(String),
    #[error("RECORD: no hash for {0}")]
    NoHash(String),
    #[error("RECORD: hash mismatch for {0}")]
    HashMismatch(String),
    #[error(
        "RECORD: size mismatch for {entry}: RECORD says {expected}, the archive holds {actual}"
    )]
    SizeMismatch {
        entry: String,
        expected: u64,
        actual: u64,
    },
    #[error("{0}")]
    EntryPoints(#[from] EntryPointError),
    #[error("unknown `.data` directory `{key}` in {entry} (expected purelib, platlib, headers, scripts or data)")]
    DataKey { key: String, entry: String },
    #[error("{what} would overwrite the venv's interpreter `{path}`")]
    Interpreter { what: String, path: PathBuf },
    #[error("failed to write `{path}`: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Where an archive entry goes and how.
#[derive(Debug)]
struct PlannedFile {
    index: usize,
    entry: String,
    dest: PathBuf,
    /// A `.data/scripts` file: `#!python` rewritten, always executable.
    script: bool,
    mode: u32,
}

/// Everything known about a wheel before anything is written.
struct WheelPlan {
    path: PathBuf,
    name: WheelName,
    dist_info: String,
    /// The directory holding `.dist-info` (purelib or platlib).
    lib_dir: PathBuf,
    files: Vec<PlannedFile>,
    launchers: Vec<EntryPoint>,
    /// RECORD rows by path; `None` when verification is turned off.
    record: Option<HashMap<String, RecordRow>>,
    warnings: Vec<String>,
}

impl WheelPlan {
    fn file_name(&self) -> String {
        self.name.file_name().to_string()
    }
}

/// Install `wheels` (paths to `.whl` files) into `venv`; `on_installed` is called once
/// per wheel when it is in (from any thread: drive a progress bar with it).
///
/// Nothing is written unless every wheel fits the venv's interpreter, is valid and none
/// writes a path another one writes. A failure while writing leaves a partial venv: it is
/// meant to be built in a staging directory that is thrown away on error.
pub fn install_wheels(
    venv: &Venv,
    wheels: &[PathBuf],
    options: &InstallOptions,
    on_installed: &(dyn Fn() + Sync),
) -> Result<InstallReport, WheelInstallError> {
    check_compatibility(venv, wheels)?;
    let plans = wheels
        .par_iter()
        .map(|path| {
            plan_wheel(venv, path, options).map_err(|problem| WheelInstallError::Wheel {
                wheel: display_name(path),
                problem,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_conflicts(venv, &plans)?;
    let installed = plans
        .par_iter()
        .map(|plan| {
            let installed =
                install_plan(venv, plan).map_err(|problem| WheelInstallError::Wheel {
                    wheel: plan.file_name(),
                    problem,
                })?;
            on_installed();
            Ok(installed)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = InstallReport {
        wheels: installed,
        warnings: plans.iter().flat_map(|p| p.warnings.clone()).collect(),
    };
    if options.compile_bytecode {
        report.warnings.extend(compile_bytecode(venv, &plans)?);
    }
    Ok(report)
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Every wheel's file name tags must fit the interpreter; all misfits are listed at once.
fn check_compatibility(venv: &Venv, wheels: &[PathBuf]) -> Result<(), WheelInstallError> {
    let target = &venv.interpreter().target;
    let supported = target.supported_tags();
    let mut misfits = Vec::new();
    for path in wheels {
        let name = WheelName::parse(&display_name(path)).map_err(|e| WheelInstallError::Wheel {
            wheel: display_name(path),
            problem: e.into(),
        })?;
        if name.compatibility(&supported).is_none() {
            misfits.push(name.file_name().to_string());
        }
    }
    if misfits.is_empty() {
        return Ok(());
    }
    Err(WheelInstallError::Incompatible {
        count: misfits.len(),
        target: format!(
            "{} {} on {} ({:?})",
            target.implementation, target.version, target.arch, target.libc
        ),
        wheels: misfits.join(", "),
    })
}

fn entry_problem(entry: &str, reason: impl Into<String>) -> WheelProblem {
    WheelProblem::Entry {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

/// A safe relative entry name: UTF-8, no control characters, no `\`, not absolute, no
/// empty, `.` or `..` components (a trailing `/` marks a directory).
fn check_entry_name(raw: &[u8]) -> Result<&str, WheelProblem> {
    let shown = String::from_utf8_lossy(raw);
    let name = std::str::from_utf8(raw).map_err(|_| entry_problem(&shown, "name is not UTF-8"))?;
    let reason = if name.is_empty() {
        Some("empty name")
    } else if name.chars().any(char::is_control) {
        Some("control character in name")
    } else if name.contains('\\') {
        Some("backslash in name")
    } else if name.starts_with('/') {
        Some("absolute path")
    } else if name
        .strip_suffix('/')
        .unwrap_or(name)
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("empty, `.` or `..` path component")
    } else {
        None
    };
    match reason {
        // Escaped, so that a line break in the name cannot break the message's line.
        Some(reason) => Err(entry_problem(&name.escape_debug().to_string(), reason)),
        None => Ok(name),
    }
}

/// Read a small file of the archive whole, as UTF-8.
fn read_text(archive: &mut ZipArchive<File>, name: &str) -> Result<Option<String>, WheelProblem> {
    let Some(index) = archive.index_for_name(name) else {
        return Ok(None);
    };
    let file = archive.by_index(index).map_err(WheelProblem::Zip)?;
    if file.size() > MAX_METADATA_FILE {
        return Err(entry_problem(name, "too large for a metadata file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_METADATA_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| entry_problem(name, e.to_string()))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| entry_problem(name, "not UTF-8"))
}

/// The `Key: value` headers of an email-style metadata file (`WHEEL`, `METADATA`), up to
/// the first blank line; a key may repeat.
fn headers(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// `WHEEL`: `Wheel-Version` 1.x (warn on a newer minor) and `Root-Is-Purelib`.
fn read_wheel_file(
    text: &str,
    dist_info: &str,
    warnings: &mut Vec<String>,
    wheel: &str,
) -> Result<bool, WheelProblem> {
    let file = format!("{dist_info}/WHEEL");
    let bad = |reason: String| WheelProblem::MetadataFile {
        file: file.clone(),
        reason,
    };
    let headers = headers(text);
    let versions: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Wheel-Version"))
        .map(|(_, v)| *v)
        .collect();
    if versions.is_empty() {
        return Err(bad("no Wheel-Version".into()));
    }
    for version in versions {
        let (major, minor) = version.split_once('.').unwrap_or((version, "0"));
        match (major.parse::<u32>(), minor.parse::<u32>()) {
            (Ok(1), Ok(0)) => {}
            (Ok(1), Ok(_)) => warnings.push(format!(
                "{wheel}: Wheel-Version {version} is newer than 1.0; installing anyway"
            )),
            _ => {
                return Err(bad(format!(
                    "unsupported Wheel-Version {version} (pyapp-install reads 1.x)"
                )))
            }
        }
    }
    let purelib = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Root-Is-Purelib"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .ok_or_else(|| bad("no Root-Is-Purelib".into()))?;
    match purelib.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(bad(format!(
            "Root-Is-Purelib is `{other}`, not true or false"
        ))),
    }
}

/// Validate a wheel and decide where each of its entries goes, writing nothing.
fn plan_wheel(
    venv: &Venv,
    path: &Path,
    options: &InstallOptions,
) -> Result<WheelPlan, WheelProblem> {
    let name = WheelName::parse(&display_name(path))?;
    let file = File::open(path).map_err(|source| WheelProblem::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = ZipArchive::new(file).map_err(WheelProblem::Zip)?;
    archive
        .validate_header_consistency()
        .map_err(WheelProblem::Zip)?;

    // Entry names and types first: everything below may rely on them being safe.
    let mut entries = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let entry = archive.by_index_data(index).map_err(WheelProblem::Zip)?;
        let entry_name = check_entry_name(entry.name_raw())?.to_string();
        if entry.encrypted() {
            return Err(entry_problem(&entry_name, "encrypted"));
        }
        if entry.is_symlink() {
            return Err(entry_problem(&entry_name, "symbolic link"));
        }
        let mode = entry.unix_mode();
        let file_type = mode.map_or(0, |m| m & 0o170000);
        if entry.is_dir() {
            continue;
        }
        if file_type != 0 && file_type != 0o100000 {
            return Err(entry_problem(&entry_name, "not a regular file"));
        }
        let executable = mode.is_some_and(|m| m & 0o111 != 0);
        entries.push((index, entry_name, executable));
    }

    let mut tops: Vec<&str> = entries
        .iter()
        .filter_map(|(_, n, _)| n.split_once('/').map(|(top, _)| top))
        .collect();
    tops.sort_unstable();
    tops.dedup();
    let dist_infos: Vec<&str> = tops
        .iter()
        .copied()
        .filter(|t| t.ends_with(".dist-info"))
        .collect();
    let dist_info = match dist_infos.as_slice() {
        [one]
            if one
                .strip_suffix(".dist-info")
                .is_some_and(|stem| name.matches_dir_stem(stem)) =>
        {
            one.to_string()
        }
        _ => {
            return Err(WheelProblem::DistInfo {
                expected: format!("{} {}", name.name(), name.version()),
                found: if dist_infos.is_empty() {
                    "none".to_string()
                } else {
                    dist_infos.join(", ")
                },
            })
        }
    };
    let stem = dist_info.trim_end_matches(".dist-info").to_string();
    let data_dir = format!("{stem}.data");
    if let Some(foreign) = tops
        .iter()
        .find(|t| t.ends_with(".data") && **t != data_dir)
    {
        return Err(WheelProblem::ForeignData(foreign.to_string()));
    }

    let metadata_path = format!("{dist_info}/METADATA");
    let metadata =
        read_text(&mut archive, &metadata_path)?.ok_or_else(|| WheelProblem::MetadataFile {
            file: metadata_path.clone(),
            reason: "missing".into(),
        })?;
    check_metadata(&metadata, &metadata_path, &name)?;

    let mut warnings = Vec::new();
    let wheel_path = format!("{dist_info}/WHEEL");
    let wheel_text =
        read_text(&mut archive, &wheel_path)?.ok_or_else(|| WheelProblem::MetadataFile {
            file: wheel_path.clone(),
            reason: "missing".into(),
        })?;
    let root_is_purelib =
        read_wheel_file(&wheel_text, &dist_info, &mut warnings, name.file_name())?;
    let lib_dir = if root_is_purelib {
        venv.purelib()
    } else {
        venv.platlib()
    };

    let record_path = format!("{dist_info}/RECORD");
    let record = if options.verify_record {
        let text =
            read_text(&mut archive, &record_path)?.ok_or_else(|| WheelProblem::MetadataFile {
                file: record_path.clone(),
                reason: "missing".into(),
            })?;
        let rows = record::parse_record(&text)?;
        Some(
            rows.into_iter()
                .map(|row| (row.path.clone(), row))
                .collect::<HashMap<_, _>>(),
        )
    } else {
        None
    };

    let launchers = match read_text(&mut archive, &format!("{dist_info}/entry_points.txt"))? {
        Some(text) => entry_points::parse_scripts(&text)?,
        None => Vec::new(),
    };

    // Written by the installer itself, never taken from the wheel.
    let own_files = [record_path.clone(), format!("{dist_info}/INSTALLER")];
    let signatures = [
        format!("{dist_info}/RECORD.jws"),
        format!("{dist_info}/RECORD.p7s"),
    ];
    let mut files = Vec::new();
    for (index, entry, executable) in entries {
        if entry.split('/').any(|c| c == "__pycache__") || own_files.contains(&entry) {
            continue;
        }
        if let Some(record) = &record {
            if !signatures.contains(&entry) {
                match record.get(&entry) {
                    None => return Err(WheelProblem::NotInRecord(entry)),
                    Some(row) if row.hash.is_none() => return Err(WheelProblem::NoHash(entry)),
                    Some(_) => {}
                }
            }
        }
        let (dest, script) = match entry.strip_prefix(&format!("{data_dir}/")) {
            Some(rest) => {
                let (key, inner) = rest
                    .split_once('/')
                    .ok_or_else(|| entry_problem(&entry, "a file directly in `.data`"))?;
                let base = match key {
                    "purelib" => venv.purelib(),
                    "platlib" => venv.platlib(),
                    "headers" => {
                        venv.headers_dir(stem.rsplit_once('-').map_or(stem.as_str(), |(n, _)| n))
                    }
                    "scripts" => venv.scripts_dir(),
                    "data" => venv.data_dir(),
                    _ => {
                        return Err(WheelProblem::DataKey {
                            key: key.to_string(),
                            entry,
                        })
                    }
                };
                (base.join(inner), key == "scripts")
            }
            None => (lib_dir.join(&entry), false),
        };
        let mode = if executable || script { 0o755 } else { 0o644 };
        files.push(PlannedFile {
            index,
            entry,
            dest,
            script,
            mode,
        });
    }
    Ok(WheelPlan {
        path: path.to_path_buf(),
        name,
        dist_info,
        lib_dir,
        files,
        launchers,
        record,
        warnings,
    })
}

/// METADATA's `Name` and `Version` must be the file name's (after normalisation).
fn check_metadata(text: &str, file: &str, name: &WheelName) -> Result<(), WheelProblem> {
    let headers = headers(text);
    let get = |key: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
    };
    let bad = |reason: String| WheelProblem::MetadataFile {
        file: file.to_string(),
        reason,
    };
    let meta_name = get("Name").ok_or_else(|| bad("no Name".into()))?;
    if normalize_name(meta_name) != name.name() {
        return Err(bad(format!(
            "Name `{meta_name}` does not match the file name"
        )));
    }
    let meta_version = get("Version").ok_or_else(|| bad("no Version".into()))?;
    if meta_version.parse::<pep440_rs::Version>().ok().as_ref() != Some(name.version()) {
        return Err(bad(format!(
            "Version `{meta_version}` does not match the file name"
        )));
    }
    Ok(())
}

/// Two writers of one path, or a wheel writing the interpreter's names, stop the install
/// before anything is written.
fn check_conflicts(venv: &Venv, plans: &[WheelPlan]) -> Result<(), WheelInstallError> {
    let bin = venv.scripts_dir();
    let reserved: Vec<PathBuf> = venv
        .interpreter_names()
        .iter()
        .map(|n| bin.join(n))
        .collect();
    let mut owners: BTreeMap<PathBuf, String> = BTreeMap::new();
    for plan in plans {
        let writes = plan
            .files
            .iter()
            .map(|f| {
                (
                    f.dest.clone(),
                    format!("{} ({})", plan.file_name(), f.entry),
                )
            })
            .chain(plan.launchers.iter().map(|l| {
                (
                    bin.join(&l.name),
                    format!("{} (entry point `{}`)", plan.file_name(), l.name),
                )
            }))
            .chain(["INSTALLER", "RECORD"].iter().map(|f| {
                let path = plan.lib_dir.join(&plan.dist_info).join(f);
                (
                    path,
                    format!("{} ({}/{f})", plan.file_name(), plan.dist_info),
                )
            }));
        for (dest, what) in writes {
            let dest = lexically_normal(&dest);
            if reserved.contains(&dest) {
                return Err(WheelInstallError::Wheel {
                    wheel: plan.file_name(),
                    problem: WheelProblem::Interpreter { what, path: dest },
                });
            }
            if let Some(first) = owners.get(&dest) {
                return Err(WheelInstallError::Conflict {
                    path: dest,
                    first: first.clone(),
                    second: what,
                });
            }
            owners.insert(dest, what);
        }
    }
    Ok(())
}

/// `a/./b` -> `a/b` (entry names never hold `..`, so nothing else needs folding).
fn lexically_normal(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes (sha256) and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Create a new file (never through an existing file or link) with its parents.
fn create_file(path: &Path, mode: u32) -> Result<File, WheelProblem> {
    let write_error = |source| WheelProblem::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(write_error)?;
    }
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(write_error)?;
    // The umask may have taken bits away; the mode is exactly 0644 or 0755.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(write_error)?;
    Ok(file)
}

/// Write a file that is generated, not extracted; its RECORD row.
fn write_generated(
    path: &Path,
    contents: &[u8],
    mode: u32,
    lib_dir: &Path,
) -> Result<RecordRow, WheelProblem> {
    let mut file = create_file(path, mode)?;
    file.write_all(contents)
        .map_err(|source| WheelProblem::Write {
            path: path.to_path_buf(),
            source,
        })?;
    let mut hasher = Hasher::new(HashAlgorithm::Sha256);
    hasher.update(contents);
    Ok(RecordRow {
        path: record_path(lib_dir, path),
        hash: Some(hasher.finish()),
        size: Some(contents.len() as u64),
    })
}

/// `dest` relative to `lib_dir` with `/` separators (`../../../bin/flask`).
fn record_path(lib_dir: &Path, dest: &Path) -> String {
    let base: Vec<Component> = lib_dir.components().collect();
    let target: Vec<Component> = dest.components().collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let ups = std::iter::repeat_n("..".to_string(), base.len() - common);
    let downs = target[common..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    ups.chain(downs).collect::<Vec<_>>().join("/")
}

/// Extract one planned file: stream it, hash the input (checked against RECORD) and the
/// output (for the new RECORD), rewrite a script's `#!python` placeholder.
fn extract_file(
    venv: &Venv,
    archive: &mut ZipArchive<File>,
    plan: &WheelPlan,
    file: &PlannedFile,
) -> Result<RecordRow, WheelProblem> {
    let expected = plan.record.as_ref().and_then(|r| r.get(&file.entry));
    let zip_entry = archive.by_index(file.index).map_err(WheelProblem::Zip)?;
    let declared = zip_entry.size();
    let mut input = HashingReader {
        inner: zip_entry,
        hasher: expected
            .and_then(|row| row.hash.as_ref())
            .map(|h| Hasher::new(h.algorithm)),
        count: 0,
    };
    let out = create_file(&file.dest, file.mode)?;
    let mut output = HashingWriter {
        inner: io::BufWriter::new(out),
        hasher: Hasher::new(HashAlgorithm::Sha256),
        count: 0,
    };
    let write_error = |source: io::Error| WheelProblem::Write {
        path: file.dest.clone(),
        source,
    };
    let read_error = |e: io::Error| entry_problem(&file.entry, format!("failed to read: {e}"));
    // Errors while copying may come from either side; tell them apart by trying the
    // reader first (read errors carry the entry, write errors the path).
    let copy = |reader: &mut dyn Read,
                output: &mut HashingWriter<io::BufWriter<File>>|
     -> Result<(), WheelProblem> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).map_err(read_error)?;
            if n == 0 {
                return Ok(());
            }
            output.write_all(&buf[..n]).map_err(write_error)?;
        }
    };
    if file.script {
        let mut reader = BufReader::new(&mut input);
        let mut first = Vec::new();
        (&mut reader)
            .take(MAX_SHEBANG_LINE)
            .read_until(b'\n', &mut first)
            .map_err(read_error)?;
        match scripts::rewrite_placeholder(&first, &venv.runtime_python()) {
            Some(shebang) => output.write_all(&shebang).map_err(write_error)?,
            None => output.write_all(&first).map_err(write_error)?,
        }
        copy(&mut reader, &mut output)?;
    } else {
        copy(&mut input, &mut output)?;
    }
    output.flush().map_err(write_error)?;
    if input.count != declared {
        return Err(entry_problem(
            &file.entry,
            format!(
                "holds {} bytes, the archive declares {declared}",
                input.count
            ),
        ));
    }
    if let Some(row) = expected {
        if let Some(size) = row.size.filter(|s| *s != input.count) {
            return Err(WheelProblem::SizeMismatch {
                entry: file.entry.clone(),
                expected: size,
                actual: input.count,
            });
        }
        let actual: Option<RecordHash> = input.hasher.map(Hasher::finish);
        if actual.as_ref() != row.hash.as_ref() {
            return Err(WheelProblem::HashMismatch(file.entry.clone()));
        }
    }
    Ok(RecordRow {
        path: record_path(&plan.lib_dir, &file.dest),
        hash: Some(output.hasher.finish()),
        size: Some(output.count),
    })
}

/// Write one planned wheel into the venv.
fn install_plan(venv: &Venv, plan: &WheelPlan) -> Result<InstalledWheel, WheelProblem> {
    let file = File::open(&plan.path).map_err(|source| WheelProblem::Open {
        path: plan.path.clone(),
        source,
    })?;
    let mut archive = ZipArchive::new(file).map_err(WheelProblem::Zip)?;
    let mut rows = Vec::with_capacity(plan.files.len() + plan.launchers.len() + 2);
    for file in &plan.files {
        rows.push(extract_file(venv, &mut archive, plan, file)?);
    }
    let python = venv.runtime_python();
    for launcher in &plan.launchers {
        let path = venv.scripts_dir().join(&launcher.name);
        rows.push(write_generated(
            &path,
            &launcher.launcher(&python),
            0o755,
            &plan.lib_dir,
        )?);
    }
    let dist_info = plan.lib_dir.join(&plan.dist_info);
    rows.push(write_generated(
        &dist_info.join("INSTALLER"),
        format!("{INSTALLER_NAME}\n").as_bytes(),
        0o644,
        &plan.lib_dir,
    )?);
    rows.push(RecordRow {
        path: format!("{}/RECORD", plan.dist_info),
        hash: None,
        size: None,
    });
    let record_file = dist_info.join("RECORD");
    let mut out = create_file(&record_file, 0o644)?;
    out.write_all(record::write_record(&rows).as_bytes())
        .map_err(|source| WheelProblem::Write {
            path: record_file.clone(),
            source,
        })?;
    Ok(InstalledWheel {
        wheel: plan.file_name(),
        name: plan.name.name().to_string(),
        version: plan.name.version().to_string(),
        files: rows.len(),
    })
}

/// Compile the installed `.py` files with the venv's interpreter. Files that do not
/// compile on this Python (templates, code for other versions) are warnings, not errors.
fn compile_bytecode(venv: &Venv, plans: &[WheelPlan]) -> Result<Vec<String>, WheelInstallError> {
    let python = venv.python();
    let compile_error = |source| WheelInstallError::Compile {
        python: python.clone(),
        source,
    };
    let mut list = String::new();
    for file in plans.iter().flat_map(|p| &p.files) {
        if file.dest.extension().is_some_and(|e| e == "py") {
            if let Some(path) = file.dest.to_str() {
                list.push_str(path);
                list.push('\n');
            }
        }
    }
    let mut child = Command::new(&python)
        .args(["-I", "-m", "compileall", "-q", "-j", "0", "-i", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(compile_error)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(list.as_bytes()).map_err(compile_error)?;
    }
    let output = child.wait_with_output().map_err(compile_error)?;
    if output.status.success() {
        return Ok(Vec::new());
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Ok(text
        .lines()
        .filter(|l| l.starts_with("***") || l.contains("Error"))
        .map(|l| format!("bytecode: {}", l.trim()))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
