//! What a wheel holds and where each of its files goes.
//!
//! A [`WheelLayout`] is the venv-independent part: the `.dist-info` directory, the files
//! with their modes, the console scripts. It is read from the wheel's archive, which is
//! validated on the way (entry names and types, `.dist-info`, `METADATA`, `WHEEL`, `RECORD`,
//! `entry_points.txt`), or from the wheel's store entry, which was validated that way when
//! it was unpacked. A [`WheelPlan`] maps a layout onto one venv; [`check_conflicts`] looks
//! across all plans before anything is written.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use pyapp_bundle::wheel_name::{normalize_name, WheelName};
use zip::ZipArchive;

use super::entry_points::{self, EntryPoint};
use super::record::{self, RecordRow};
use super::{display_name, entry_problem, WheelInstallError, WheelProblem, MAX_METADATA_FILE};
use crate::store::StoreEntry;
use crate::venv::Venv;

/// A wheel's contents, whatever venv it goes into.
#[derive(Debug)]
pub struct WheelLayout {
    pub name: WheelName,
    pub dist_info: String,
    /// `Root-Is-Purelib`: whether the wheel's root goes to purelib or platlib.
    pub root_is_purelib: bool,
    /// Every file installed from the wheel (not `RECORD`, `INSTALLER` nor `__pycache__`).
    pub files: Vec<LayoutFile>,
    pub launchers: Vec<EntryPoint>,
    pub warnings: Vec<String>,
}

/// One file of a wheel.
#[derive(Debug)]
pub struct LayoutFile {
    /// The archive entry name.
    pub entry: String,
    /// 0o755 for executables and `.data/scripts` files, 0o644 for the rest.
    pub mode: u32,
    /// Its size, as the archive declares it or the store recorded it.
    pub size: u64,
}

/// A wheel's archive, validated: its layout, where each file is in it, and its RECORD.
pub struct WheelArchive<R> {
    pub archive: ZipArchive<R>,
    pub layout: WheelLayout,
    /// The zip index of each of `layout.files`.
    pub indexes: Vec<usize>,
    /// RECORD rows by path; `None` when verification is turned off.
    pub record: Option<HashMap<String, RecordRow>>,
}

/// A layout mapped onto a venv.
#[derive(Debug)]
pub struct WheelPlan {
    /// The directory holding `.dist-info` (purelib or platlib).
    pub lib_dir: PathBuf,
    /// Where each of the layout's files goes, in the same order.
    pub files: Vec<PlannedFile>,
}

/// Where a file goes and how.
#[derive(Debug)]
pub struct PlannedFile {
    pub dest: PathBuf,
    /// A `.data/scripts` file: its `#!python` placeholder is rewritten, always executable.
    pub script: bool,
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
fn read_text<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    name: &str,
) -> Result<Option<String>, WheelProblem> {
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

/// Read a small file of a store entry whole, as UTF-8.
fn read_entry_text(entry: &StoreEntry, name: &str) -> Result<Option<String>, WheelProblem> {
    if !entry.index.files.iter().any(|file| file.path == name) {
        return Ok(None);
    }
    let path = entry.file(name);
    let open_error = |source| WheelProblem::Open {
        path: path.clone(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|file| file.take(MAX_METADATA_FILE).read_to_end(&mut bytes))
        .map_err(open_error)?;
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

fn required(text: Option<String>, file: &str) -> Result<String, WheelProblem> {
    text.ok_or_else(|| WheelProblem::MetadataFile {
        file: file.to_string(),
        reason: "missing".into(),
    })
}

/// `NAME-VERSION.data`, the wheel's own `.data` directory.
fn data_dir(dist_info: &str) -> String {
    format!("{}.data", dist_info.trim_end_matches(".dist-info"))
}

/// 0o755 for executables and `.data/scripts` files, 0o644 for the rest.
fn mode_of(entry: &str, executable: bool, data_dir: &str) -> u32 {
    let script = entry
        .strip_prefix(data_dir)
        .is_some_and(|rest| rest.starts_with("/scripts/"));
    if executable || script {
        0o755
    } else {
        0o644
    }
}

impl<R: Read + Seek> WheelArchive<R> {
    /// Opens the archive `bytes` of the wheel `file_name` and validates it, writing nothing.
    pub fn read(file_name: &str, bytes: R, verify_record: bool) -> Result<Self, WheelProblem> {
        let name = WheelName::parse(file_name)?;
        let mut archive = ZipArchive::new(bytes).map_err(WheelProblem::Zip)?;
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
            entries.push((index, entry_name, executable, entry.size()));
        }

        let mut tops: Vec<&str> = entries
            .iter()
            .filter_map(|(_, n, _, _)| n.split_once('/').map(|(top, _)| top))
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
        let data_dir = data_dir(&dist_info);
        if let Some(foreign) = tops
            .iter()
            .find(|t| t.ends_with(".data") && **t != data_dir)
        {
            return Err(WheelProblem::ForeignData(foreign.to_string()));
        }

        let metadata_path = format!("{dist_info}/METADATA");
        let metadata = required(read_text(&mut archive, &metadata_path)?, &metadata_path)?;
        check_metadata(&metadata, &metadata_path, &name)?;

        let mut warnings = Vec::new();
        let wheel_path = format!("{dist_info}/WHEEL");
        let wheel_text = required(read_text(&mut archive, &wheel_path)?, &wheel_path)?;
        let root_is_purelib =
            read_wheel_file(&wheel_text, &dist_info, &mut warnings, name.file_name())?;

        let record_path = format!("{dist_info}/RECORD");
        let record = if verify_record {
            let text = required(read_text(&mut archive, &record_path)?, &record_path)?;
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
        let own_files = [record_path, format!("{dist_info}/INSTALLER")];
        let signatures = [
            format!("{dist_info}/RECORD.jws"),
            format!("{dist_info}/RECORD.p7s"),
        ];
        let mut files = Vec::with_capacity(entries.len());
        let mut indexes = Vec::with_capacity(entries.len());
        for (index, entry, executable, size) in entries {
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
            let mode = mode_of(&entry, executable, &data_dir);
            files.push(LayoutFile { entry, mode, size });
            indexes.push(index);
        }
        Ok(WheelArchive {
            archive,
            layout: WheelLayout {
                name,
                dist_info,
                root_is_purelib,
                files,
                launchers,
                warnings,
            },
            indexes,
            record,
        })
    }
}

impl WheelLayout {
    /// The layout of the wheel `file_name` from its store entry.
    pub fn of_entry(file_name: &str, entry: &StoreEntry) -> Result<Self, WheelProblem> {
        let name = WheelName::parse(file_name)?;
        let dist_info = entry.index.dist_info.clone();
        let mut warnings = Vec::new();
        let wheel_path = format!("{dist_info}/WHEEL");
        let wheel_text = required(read_entry_text(entry, &wheel_path)?, &wheel_path)?;
        let root_is_purelib =
            read_wheel_file(&wheel_text, &dist_info, &mut warnings, name.file_name())?;
        let launchers = match read_entry_text(entry, &format!("{dist_info}/entry_points.txt"))? {
            Some(text) => entry_points::parse_scripts(&text)?,
            None => Vec::new(),
        };
        let data_dir = data_dir(&dist_info);
        let files = entry
            .index
            .files
            .iter()
            .map(|file| LayoutFile {
                entry: file.path.clone(),
                mode: mode_of(&file.path, file.executable, &data_dir),
                size: file.size,
            })
            .collect();
        Ok(WheelLayout {
            name,
            dist_info,
            root_is_purelib,
            files,
            launchers,
            warnings,
        })
    }

    /// The wheel's file name.
    pub fn file_name(&self) -> String {
        self.name.file_name().to_string()
    }
}

impl WheelPlan {
    /// Where each file of `layout` goes in `venv`.
    pub fn new(venv: &Venv, layout: &WheelLayout) -> Result<Self, WheelProblem> {
        let lib_dir = if layout.root_is_purelib {
            venv.purelib()
        } else {
            venv.platlib()
        };
        let data_dir = data_dir(&layout.dist_info);
        let mut files = Vec::with_capacity(layout.files.len());
        for file in &layout.files {
            let entry = &file.entry;
            let (dest, script) = match entry.strip_prefix(&format!("{data_dir}/")) {
                Some(rest) => {
                    let (key, inner) = rest
                        .split_once('/')
                        .ok_or_else(|| entry_problem(entry, "a file directly in `.data`"))?;
                    let base = match key {
                        "purelib" => venv.purelib(),
                        "platlib" => venv.platlib(),
                        "headers" => venv.headers_dir(layout.name.name()),
                        "scripts" => venv.scripts_dir(),
                        "data" => venv.data_dir(),
                        _ => {
                            return Err(WheelProblem::DataKey {
                                key: key.to_string(),
                                entry: entry.clone(),
                            })
                        }
                    };
                    (base.join(inner), key == "scripts")
                }
                None => (lib_dir.join(entry), false),
            };
            files.push(PlannedFile { dest, script });
        }
        Ok(WheelPlan { lib_dir, files })
    }
}

/// What writes a path, named only when it is part of a conflict.
enum Writer<'a> {
    /// The file of this archive entry.
    File(&'a str),
    /// The launcher of this console script.
    Launcher(&'a str),
    /// `INSTALLER` or `RECORD`.
    Own(&'static str),
}

/// Two writers of one path, or a wheel writing the interpreter's names, stop the install
/// before anything is written.
pub fn check_conflicts(
    venv: &Venv,
    wheels: &[(&WheelLayout, &WheelPlan)],
) -> Result<(), WheelInstallError> {
    let bin = venv.scripts_dir();
    let reserved: Vec<PathBuf> = venv
        .interpreter_names()
        .iter()
        .map(|n| bin.join(n))
        .collect();
    let system_modules = venv.linked_modules();
    let describe = |wheel: usize, writer: &Writer| {
        let layout = wheels[wheel].0;
        let file_name = layout.file_name();
        match writer {
            Writer::File(entry) => format!("{file_name} ({entry})"),
            Writer::Launcher(name) => format!("{file_name} (entry point `{name}`)"),
            Writer::Own(file) => format!("{file_name} ({}/{file})", layout.dist_info),
        }
    };
    // Keyed by the normal form's bytes: equal for equal paths, and much cheaper to hash than
    // a Path (component by component).
    let mut owners: HashMap<Cow<OsStr>, (usize, Writer)> = HashMap::new();
    for (wheel, (layout, plan)) in wheels.iter().enumerate() {
        let writes = layout
            .files
            .iter()
            .zip(&plan.files)
            .map(|(file, planned)| {
                (
                    Cow::Borrowed(planned.dest.as_path()),
                    Writer::File(&file.entry),
                )
            })
            .chain(
                layout
                    .launchers
                    .iter()
                    .map(|l| (Cow::Owned(bin.join(&l.name)), Writer::Launcher(&l.name))),
            )
            .chain(["INSTALLER", "RECORD"].into_iter().map(|file| {
                let path = plan.lib_dir.join(&layout.dist_info).join(file);
                (Cow::Owned(path), Writer::Own(file))
            }));
        for (dest, writer) in writes {
            let dest = lexically_normal(dest);
            if reserved
                .iter()
                .any(|path| path.as_os_str() == dest.as_os_str())
            {
                return Err(WheelInstallError::Wheel {
                    wheel: layout.file_name(),
                    problem: WheelProblem::Interpreter {
                        what: describe(wheel, &writer),
                        path: dest.into_owned(),
                    },
                });
            }
            if let Some(module) = system_modules.iter().find(|link| dest.starts_with(link)) {
                return Err(WheelInstallError::Wheel {
                    wheel: layout.file_name(),
                    problem: WheelProblem::SystemModule {
                        what: describe(wheel, &writer),
                        module: display_name(module),
                    },
                });
            }
            let key = match dest {
                Cow::Borrowed(path) => Cow::Borrowed(path.as_os_str()),
                Cow::Owned(path) => Cow::Owned(path.into_os_string()),
            };
            match owners.entry(key) {
                Entry::Occupied(first) => {
                    let (first_wheel, first_writer) = first.get();
                    return Err(WheelInstallError::Conflict {
                        first: describe(*first_wheel, first_writer),
                        second: describe(wheel, &writer),
                        path: PathBuf::from(first.key().to_os_string()),
                    });
                }
                Entry::Vacant(vacant) => {
                    vacant.insert((wheel, writer));
                }
            }
        }
    }
    Ok(())
}

/// `a/./b`, `a//b` and `a/b/` -> `a/b` (entry names never hold `..`, so nothing else
/// needs folding), so that equal paths have equal bytes; most paths are returned as they
/// are, found so from their bytes.
fn lexically_normal(path: Cow<Path>) -> Cow<Path> {
    let bytes = path.as_os_str().as_bytes();
    let folds = bytes.ends_with(b"/")
        || bytes.ends_with(b"/.")
        || bytes.starts_with(b"./")
        || bytes.windows(2).any(|pair| pair == b"//")
        || bytes.windows(3).any(|three| three == b"/./");
    if !folds {
        return path;
    }
    Cow::Owned(
        path.components()
            .filter(|c| *c != Component::CurDir)
            .collect(),
    )
}

/// The wheels whose file name tags do not fit the venv's interpreter, all listed at once.
pub fn check_compatibility<'a>(
    venv: &Venv,
    file_names: impl Iterator<Item = &'a str>,
) -> Result<(), WheelInstallError> {
    let target = &venv.interpreter().target;
    let supported = target.supported_tags();
    let mut misfits = Vec::new();
    for file_name in file_names {
        let name = WheelName::parse(file_name).map_err(|e| WheelInstallError::Wheel {
            wheel: file_name.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_paths_have_equal_bytes_once_normal() {
        for (given, normal) in [
            ("/v/lib/a.py", "/v/lib/a.py"),
            ("/v/./lib/a.py", "/v/lib/a.py"),
            ("/v//lib/a.py", "/v/lib/a.py"),
            ("/v/lib/", "/v/lib"),
            ("/v/lib/.", "/v/lib"),
            ("./v/a", "v/a"),
        ] {
            let path = lexically_normal(Cow::Borrowed(Path::new(given)));
            assert_eq!(path.as_os_str(), OsStr::new(normal), "{given}");
        }
    }
}
