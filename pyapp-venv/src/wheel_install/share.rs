//! Directories of a venv shared whole with the store: instead of a directory of the venv
//! and a hard link for each of its files, one symbolic link to the same directory of the
//! wheel's store entry, when every file the venv gets below it comes from that entry.
//!
//! `django/` of a venv is ~300 directories and ~2,700 files: made one by one, a second app
//! or an upgrade pays a `mkdir` and an `fsync` per directory and a `link` per file for
//! what the store already holds, durably. A link to the entry's `files/django` costs one
//! entry in `site-packages/`.
//!
//! The rules (spec/FORMAT.md 6.6, "Shared directories"):
//! - only wheels the caller allows (`Placement::Shared { link_dirs: true }`), and only
//!   when no bytecode is compiled (it would be written into the store); a link points
//!   where the entry is published, final and durable before the venv is (an entry this
//!   install unpacks is published before [`super::install_from`] returns, and when
//!   another install published the same wheel first, the venv's hard links are remade
//!   from that one, so that it is the entry they keep in use);
//! - a directory below `purelib` or `platlib` is linked when every file the venv gets in
//!   it (any wheel's, and `INSTALLER` and `RECORD`) is a file of that one wheel from one
//!   place of its entry (its root, or `.data/purelib` or `.data/platlib`), never a
//!   `#!python` script; the shallowest such directory is linked, so a namespace package
//!   two wheels share (`google/`) stays a directory with a link for each wheel's part;
//! - `.dist-info` is linked only when the entry's (`files/NAME.dist-info/`, with the
//!   `INSTALLER` and `RECORD` of `own_files`) is the venv's whole one, and the entry was
//!   published before this install; the venv then keeps a hard link to the entry's
//!   `index.json` in `STORE_ENTRIES_DIR`. Otherwise it is a directory whose files are hard
//!   links (`INSTALLER` and `RECORD` written, or linked from the entry's copies). Either
//!   way the entry stays in use (6.6, link counts) while the release lives;
//! - the link is relative (`../../../../../../../.store/wheels/SHA256/files/django`), so it
//!   holds under `--root` and once the staging directory is renamed into place.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::layout::{WheelLayout, WheelPlan};
use super::place::below_dir;
use crate::store::StoreEntry;
use crate::venv::Venv;

/// A directory of the venv made a symbolic link into a store entry.
#[derive(Debug)]
pub struct DirLink {
    /// Where the link goes in the venv.
    pub path: PathBuf,
    /// What it points to, relative to its directory.
    pub target: PathBuf,
}

/// The directories of a venv shared with the store.
#[derive(Debug, Default)]
pub struct SharedDirs {
    pub links: Vec<DirLink>,
    /// For each wheel, for each of its planned files: whether a link brings it.
    pub covered: Vec<Vec<bool>>,
    /// For each wheel: whether its `.dist-info` is a link (then with `INSTALLER` and
    /// `RECORD`, and its entry is kept in use by the venv's `STORE_ENTRIES_DIR`).
    pub dist_info_linked: Vec<bool>,
}

impl SharedDirs {
    /// Whether file `file` of wheel `wheel` comes through a link.
    pub fn covers(&self, wheel: usize, file: usize) -> bool {
        self.covered
            .get(wheel)
            .and_then(|files| files.get(file))
            .copied()
            .unwrap_or(false)
    }

    /// Whether the `.dist-info` of wheel `wheel` is a link.
    pub fn links_dist_info(&self, wheel: usize) -> bool {
        self.dist_info_linked.get(wheel).copied().unwrap_or(false)
    }

    /// Whether a link brings any file of wheel `wheel` (a store entry's, then).
    pub fn covers_any(&self, wheel: usize) -> bool {
        self.covered
            .get(wheel)
            .is_some_and(|files| files.contains(&true))
    }
}

/// Who gives a directory its files: one wheel, from one place of its entry (the length
/// of the entry name's prefix above the venv path), or several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    One { wheel: usize, prefix: usize },
    Mixed,
}

/// One wheel to plan for: its layout and plan, and its store entry when its directories
/// may be shared.
pub struct Candidate<'a> {
    pub layout: &'a WheelLayout,
    pub plan: &'a WheelPlan,
    pub entry: Option<&'a StoreEntry>,
    /// Whether the entry's `.dist-info` is the venv's whole one
    /// (`own_files::OwnFiles::linkable_in`), so that it may be linked too.
    pub whole_dist_info: bool,
}

/// A path below one of the venv's lib directories: which one, and the rest, `/`-separated.
type Below<'a> = (usize, &'a str);

/// A planned file below a lib dir, and its owner when it may be shared.
type Placed<'a> = (Below<'a>, Option<Owner>);

/// Which directories of `venv` become links into the store at `store_dir`, for `wheels`.
/// None when the store is on another filesystem than the venv (its files are copied
/// then, and a copied entry has no link keeping it in use).
pub fn plan(venv: &Venv, store_dir: &Path, wheels: &[Candidate]) -> SharedDirs {
    let mut shared = SharedDirs {
        links: Vec::new(),
        covered: wheels
            .iter()
            .map(|wheel| vec![false; wheel.plan.files.len()])
            .collect(),
        dist_info_linked: vec![false; wheels.len()],
    };
    if wheels.iter().all(|wheel| wheel.entry.is_none()) || !same_filesystem(venv, store_dir) {
        return shared;
    }
    let lib_dirs = [venv.purelib(), venv.platlib()];
    // Each planned file's place below a lib dir, and who would own it: computed once, as
    // strings, so that its directories are slices of it.
    let placed: Vec<Vec<Option<Placed>>> = wheels
        .iter()
        .enumerate()
        .map(|(wheel, candidate)| {
            candidate
                .layout
                .files
                .iter()
                .zip(&candidate.plan.files)
                .map(|(file, planned)| {
                    let (lib, rest) = below(&lib_dirs, &planned.dest)?;
                    let owner = candidate
                        .entry
                        .filter(|_| !planned.script)
                        .and_then(|_| file.entry.strip_suffix(rest))
                        .filter(|prefix| prefix.is_empty() || prefix.ends_with('/'))
                        .map(|prefix| Owner::One {
                            wheel,
                            prefix: prefix.len(),
                        });
                    Some(((lib, rest), owner))
                })
                .collect()
        })
        .collect();
    // INSTALLER and RECORD are the venv's own (`own_files`): a `.dist-info` is linked only
    // when its entry's is the venv's whole one.
    let dist_infos: Vec<PathBuf> = wheels
        .iter()
        .map(|wheel| wheel.plan.lib_dir.join(&wheel.layout.dist_info))
        .collect();

    let mut owners: HashMap<Below, Owner> = HashMap::new();
    for ((lib, rest), owner) in placed.iter().flatten().flatten() {
        let owner = owner.unwrap_or(Owner::Mixed);
        for dir in dirs_of(rest) {
            owners
                .entry((*lib, dir))
                .and_modify(|first| {
                    if *first != owner {
                        *first = Owner::Mixed;
                    }
                })
                .or_insert(owner);
        }
    }
    let whole = wheels.iter().map(|wheel| wheel.whole_dist_info);
    for (dir, _) in dist_infos.iter().zip(whole).filter(|(_, whole)| !whole) {
        if let Some(dir) = below(&lib_dirs, dir) {
            owners.insert(dir, Owner::Mixed);
        }
    }

    let mut linked: HashSet<Below> = HashSet::new();
    for (wheel, candidate) in wheels.iter().enumerate() {
        let Some(entry) = candidate.entry else {
            continue;
        };
        for (at, file) in candidate.layout.files.iter().enumerate() {
            let Some(((lib, rest), Some(owner @ Owner::One { prefix, .. }))) = &placed[wheel][at]
            else {
                continue;
            };
            let Some(dir) = dirs_of(rest).find(|dir| owners.get(&(*lib, *dir)) == Some(owner))
            else {
                continue;
            };
            if !linked.contains(&(*lib, dir)) {
                let path = lib_dirs[*lib].join(dir);
                let source = entry.published_file(&format!("{}{dir}", &file.entry[..*prefix]));
                let Some(target) = path.parent().and_then(|from| relative(from, &source)) else {
                    continue;
                };
                linked.insert((*lib, dir));
                shared.links.push(DirLink { path, target });
            }
            shared.covered[wheel][at] = true;
        }
    }
    for (wheel, dir) in dist_infos.iter().enumerate() {
        shared.dist_info_linked[wheel] =
            below(&lib_dirs, dir).is_some_and(|dir| linked.contains(&dir));
    }
    shared
}

/// `path` below one of `lib_dirs`: which (purelib and platlib are most often one
/// directory, then named once) and the rest.
fn below<'p>(lib_dirs: &[PathBuf; 2], path: &'p Path) -> Option<Below<'p>> {
    lib_dirs.iter().enumerate().find_map(|(at, dir)| {
        let rest = below_dir(path, dir)?;
        Some((if lib_dirs[0] == *dir { 0 } else { at }, rest))
    })
}

/// The directories a file at `rest` (below a lib dir) is in, shallowest first:
/// `a/b/c.py` is in `a`, then `a/b`.
fn dirs_of(rest: &str) -> impl Iterator<Item = &str> {
    rest.match_indices('/').map(|(at, _)| &rest[..at])
}

/// Whether the venv and the store are on one filesystem (hard links between them work).
fn same_filesystem(venv: &Venv, store_dir: &Path) -> bool {
    match (fs::metadata(venv.root()), fs::metadata(store_dir)) {
        (Ok(venv), Ok(store)) => venv.dev() == store.dev(),
        _ => false,
    }
}

/// `to` relative to the directory `from`, both absolute and made of plain names only
/// (`None` otherwise): `../../.store/wheels/…`.
fn relative(from: &Path, to: &Path) -> Option<PathBuf> {
    let (from, to) = (plain_components(from)?, plain_components(to)?);
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for component in &to[common..] {
        path.push(component);
    }
    Some(path)
}

/// The names of an absolute path made of plain names only.
fn plain_components(path: &Path) -> Option<Vec<Component<'_>>> {
    let mut components = path.components();
    (components.next() == Some(Component::RootDir)
        && components.all(|c| matches!(c, Component::Normal(_))))
    .then(|| path.components().skip(1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_climbs_to_the_common_directory() {
        assert_eq!(
            relative(
                Path::new("/apps/a/releases/r/venv/lib/python3.11/site-packages"),
                Path::new("/apps/.store/wheels/ab/files/django")
            ),
            Some(PathBuf::from(
                "../../../../../../../.store/wheels/ab/files/django"
            ))
        );
        assert_eq!(relative(Path::new("/a/../b"), Path::new("/c")), None);
        assert_eq!(relative(Path::new("a"), Path::new("/c")), None);
    }
}
