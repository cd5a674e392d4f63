//! The app's own wheel. A plain pure-Python project (static PEP 621 metadata, a known build
//! backend, no `setup.py`, no extension sources) is built natively, reproducibly and without
//! network; anything else is handed to `pip wheel --no-deps`, which runs its build backend.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use walkdir::WalkDir;
use zip::write::SimpleFileOptions;

use crate::index::IndexOptions;
use crate::project::Project;
use crate::Refusal;

/// Build backends whose output for a plain layout is what the native build writes.
const PLAIN_BACKENDS: &[&str] = &[
    "setuptools.build_meta",
    "hatchling.build",
    "flit_core.buildapi",
    "pdm.backend",
    "poetry.core.masonry.api",
];
/// Sources that need a compiler: their presence sends the build to pip.
const EXTENSION_SUFFIXES: &[&str] = &[".c", ".cc", ".cpp", ".pyx", ".pxd", ".rs", ".f90"];

/// How the wheel was made, for the build report.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltWith {
    Native,
    Pip,
}

/// Build the app's wheel into `out_dir` and return its path.
pub fn build(
    project: &Project,
    module: &str,
    out_dir: &Path,
    python: &Path,
    index: &IndexOptions,
    mtime: zip::DateTime,
) -> anyhow::Result<(PathBuf, BuiltWith)> {
    match plain_package_dir(project, module) {
        Some(package_dir) => Ok((
            build_native(project, &package_dir, out_dir, mtime)?,
            BuiltWith::Native,
        )),
        None => Ok((
            build_with_pip(project, out_dir, python, index)?,
            BuiltWith::Pip,
        )),
    }
}

/// The package directory when the project has the plain layout the native build handles.
fn plain_package_dir(project: &Project, module: &str) -> Option<PathBuf> {
    let backend_known = project
        .build_backend
        .as_deref()
        .is_some_and(|backend| PLAIN_BACKENDS.contains(&backend));
    if !backend_known || !project.dynamic.is_empty() || project.dir.join("setup.py").exists() {
        return None;
    }
    let top = module.split('.').next()?;
    let package_dir = ["src", "."]
        .iter()
        .map(|base| project.dir.join(base).join(top))
        .find(|dir| dir.join("__init__.py").is_file())?;
    let has_extensions = WalkDir::new(&package_dir)
        .into_iter()
        .flatten()
        .any(|entry| {
            let name = entry.file_name().to_string_lossy();
            EXTENSION_SUFFIXES
                .iter()
                .any(|suffix| name.ends_with(suffix))
        });
    (!has_extensions).then_some(package_dir)
}

fn build_native(
    project: &Project,
    package_dir: &Path,
    out_dir: &Path,
    mtime: zip::DateTime,
) -> anyhow::Result<PathBuf> {
    let name = pyapp_bundle::wheel_name::normalize_name(&project.name).replace('-', "_");
    let version: pep440_rs::Version = project.version.parse().map_err(|err| {
        Refusal::new(format!(
            "pyproject.toml: [project] version `{}` is not a PEP 440 version: {err}",
            project.version
        ))
    })?;
    let dist_info = format!("{name}-{version}.dist-info");
    let wheel_path = out_dir.join(format!("{name}-{version}-py3-none-any.whl"));

    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let package_root = package_dir.parent().unwrap_or(package_dir);
    for entry in WalkDir::new(package_dir).sort_by_file_name() {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_file()
            || file_name.ends_with(".pyc")
            || entry
                .path()
                .components()
                .any(|c| c.as_os_str() == "__pycache__")
        {
            continue;
        }
        let relative = entry.path().strip_prefix(package_root)?;
        let relative = relative.to_str().ok_or_else(|| {
            Refusal::new(format!(
                "{}: file name is not UTF-8",
                entry.path().display()
            ))
        })?;
        let mut content = Vec::new();
        std::fs::File::open(entry.path())?.read_to_end(&mut content)?;
        files.push((relative.to_string(), content));
    }
    files.push((
        format!("{dist_info}/METADATA"),
        core_metadata(project, &version).into_bytes(),
    ));
    files.push((
        format!("{dist_info}/WHEEL"),
        format!(
            "Wheel-Version: 1.0\nGenerator: pyapp-build {}\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            env!("CARGO_PKG_VERSION")
        )
        .into_bytes(),
    ));
    if !project.entry_points.is_empty() {
        files.push((
            format!("{dist_info}/entry_points.txt"),
            entry_points_txt(&project.entry_points).into_bytes(),
        ));
    }
    let record_name = format!("{dist_info}/RECORD");
    let mut record = String::new();
    for (path, content) in &files {
        let digest =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(content));
        let _ = writeln!(record, "{path},sha256={digest},{}", content.len());
    }
    let _ = writeln!(record, "{record_name},,");
    files.push((record_name, record.into_bytes()));

    let partial = tempfile::NamedTempFile::new_in(out_dir)?;
    let mut zip = zip::ZipWriter::new(partial.as_file());
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(mtime)
        .unix_permissions(0o644);
    for (path, content) in &files {
        zip.start_file(path.as_str(), options)?;
        zip.write_all(content)?;
    }
    zip.finish()?;
    partial.persist(&wheel_path)?;
    Ok(wheel_path)
}

/// Core metadata 2.1 for the app's wheel.
fn core_metadata(project: &Project, version: &pep440_rs::Version) -> String {
    let mut text = format!(
        "Metadata-Version: 2.1\nName: {}\nVersion: {version}\n",
        project.name
    );
    if let Some(summary) = &project.description {
        let _ = writeln!(
            text,
            "Summary: {}",
            summary.lines().next().unwrap_or_default()
        );
    }
    if let Some(requires) = &project.requires_python {
        let _ = writeln!(text, "Requires-Python: {requires}");
    }
    for requirement in &project.dependencies {
        let _ = writeln!(text, "Requires-Dist: {requirement}");
    }
    for (extra, requirements) in &project.optional_dependencies {
        let _ = writeln!(text, "Provides-Extra: {extra}");
        for requirement in requirements {
            let marker = format!("extra == \"{extra}\"");
            let line = match requirement.split_once(';') {
                Some((req, existing)) => {
                    format!("{} ; ({}) and {marker}", req.trim(), existing.trim())
                }
                None => format!("{} ; {marker}", requirement.trim()),
            };
            let _ = writeln!(text, "Requires-Dist: {line}");
        }
    }
    text
}

fn entry_points_txt(groups: &BTreeMap<String, BTreeMap<String, String>>) -> String {
    let mut text = String::new();
    for (group, entries) in groups {
        let _ = writeln!(text, "[{group}]");
        for (name, target) in entries {
            let _ = writeln!(text, "{name} = {target}");
        }
        text.push('\n');
    }
    text
}

fn build_with_pip(
    project: &Project,
    out_dir: &Path,
    python: &Path,
    index: &IndexOptions,
) -> anyhow::Result<PathBuf> {
    let scratch = tempfile::tempdir_in(out_dir)?;
    let mut command = Command::new(python);
    command
        .args(["-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir"])
        .arg(scratch.path())
        .arg(&project.dir);
    index.add_to(&mut command);
    log::debug!("{command:?}");
    let status = command
        .status()
        .map_err(|err| anyhow::anyhow!("cannot run {} -m pip: {err}", python.display()))?;
    if !status.success() {
        return Err(Refusal::new(format!(
            "{}: `pip wheel --no-deps` failed ({status}); its output is above",
            project.dir.display()
        ))
        .into());
    }
    let built: Vec<PathBuf> = std::fs::read_dir(scratch.path())?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .collect();
    let [wheel] = &built[..] else {
        anyhow::bail!("pip wheel wrote {} wheels, expected one", built.len());
    };
    let file_name = wheel
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("wheel without a name"))?;
    let target = out_dir.join(file_name);
    std::fs::rename(wheel, &target)?;
    Ok(target)
}
