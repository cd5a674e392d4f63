//! The app's source tree as it goes into the bundle's `src/`: every regular file of the
//! project directory except version-control data, caches, virtual environments and build
//! output. Symlinks are refused: a bundle holds regular files only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pyapp_bundle::layout::BUNDLE_SUFFIX;
use walkdir::WalkDir;

use crate::Refusal;

/// Directory names never packed, wherever they appear.
const SKIPPED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "build",
    "dist",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "node_modules",
    "target",
];
/// File name suffixes never packed.
const SKIPPED_SUFFIXES: &[&str] = &[".pyc", ".pyo", BUNDLE_SUFFIX, ".swp", "~"];

/// One file of the source tree.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// `/`-separated path relative to the project directory.
    pub relative: String,
    pub path: PathBuf,
    pub executable: bool,
}

/// Collect the source files of `project_dir`, skipping `exclude` (the output directory,
/// when it lies inside the project). Sorted by relative path.
pub fn collect(project_dir: &Path, exclude: Option<&Path>) -> anyhow::Result<Vec<SourceFile>> {
    let exclude = exclude.and_then(|dir| dir.canonicalize().ok());
    let mut files = Vec::new();
    let walker = WalkDir::new(project_dir)
        .follow_links(false)
        .sort_by_file_name();
    let mut entries = walker.into_iter().filter_entry(|entry| {
        let name = entry.file_name().to_string_lossy();
        let skipped_dir = entry.file_type().is_dir()
            && entry.depth() > 0
            && (SKIPPED_DIRS.contains(&name.as_ref()) || name.ends_with(".egg-info"));
        let is_excluded = exclude
            .as_ref()
            .is_some_and(|dir| entry.path().canonicalize().is_ok_and(|p| &p == dir));
        !skipped_dir && !is_excluded
    });
    while let Some(entry) = entries.next().transpose()? {
        let name = entry.file_name().to_string_lossy();
        if SKIPPED_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
            continue;
        }
        let relative_path = entry.path().strip_prefix(project_dir)?;
        let relative = relative_path
            .to_str()
            .ok_or_else(|| {
                Refusal::new(format!(
                    "{}: file name is not UTF-8",
                    entry.path().display()
                ))
            })?
            .to_string();
        let file_type = entry.file_type();
        if file_type.is_symlink() {
            return Err(Refusal::new(format!(
                "{}: is a symlink; a bundle holds regular files only (copy the target or remove the link)",
                entry.path().display()
            ))
            .into());
        }
        if file_type.is_dir() {
            continue;
        }
        if !file_type.is_file() {
            return Err(
                Refusal::new(format!("{}: is not a regular file", entry.path().display())).into(),
            );
        }
        let mode = entry.metadata()?.permissions().mode();
        files.push(SourceFile {
            relative,
            path: entry.path().to_path_buf(),
            executable: mode & 0o111 != 0,
        });
    }
    Ok(files)
}
