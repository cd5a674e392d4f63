//! Installing wheels into a [`Venv`] natively: no pip, no `python -m installer`.
//!
//! Each wheel is first read (`layout`): from its archive, validated (zip and names,
//! `.dist-info`, `WHEEL`, `RECORD`, entry points), or, for a `shared` wheel the store
//! already has, from its store entry without opening the archive. Every file is mapped to
//! its place in the venv and conflicts between wheels are looked for, all before anything
//! is written. Then, in parallel chunks of files across all wheels (`place`): the shared
//! wheels the store lacks are unpacked under its `tmp/` (streamed from the archive, hashed
//! while written, checked against RECORD); every file is extracted into the venv (`local`
//! wheels) or hard-linked from the store (`shared` ones; a directory one entry fills whole
//! is one symbolic link to where it is published instead: `share`) while the new entries
//! are synced (each file's write-back started as it is closed, every file and directory
//! written into them listed to be synced: nothing is walked), then published (when another
//! install published the same wheel first, the venv's hard links into the new entry are
//! remade from that one: `adopt_published`); and each wheel gets its
//! launchers, `INSTALLER` and a RECORD of what was actually written. What the venv was
//! given (its new directories, every file written rather than linked) is listed in the
//! caller's [`ToSync`], to be made durable before the venv is published.

mod bytecode;
pub mod entry_points;
mod layout;
mod own_files;
mod place;
pub mod record;
pub mod scripts;
mod share;
mod source;

use std::collections::HashMap;
use std::io::{self, Read, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pyapp_bundle::wheel_name::WheelNameError;
use rayon::prelude::*;
use thiserror::Error;

use crate::store::{EntryIndex, IndexedFile, PendingEntry, StoreEntry, StoreSession, INDEX_FORMAT};
use crate::venv::Venv;
pub use bytecode::Confine;
use entry_points::EntryPointError;
use layout::{check_compatibility, check_conflicts, WheelArchive, WheelLayout, WheelPlan};
use own_files::OwnFiles;
use place::{
    create_parents, extract_file, place_from_store, write_generated, Extraction, Scratch, Written,
};
use pyapp_fs::{fault, ToSync};
use record::{RecordError, RecordRow};
use share::{Candidate, SharedDirs};
pub use source::WheelFile;

/// The directory of a venv holding, for each store entry whose `.dist-info` it links, a
/// hard link to the entry's `index.json` named by its sha256: what keeps such an entry in
/// use (FORMAT.md 6.6), since none of its files may be linked into the venv otherwise.
pub const STORE_ENTRIES_DIR: &str = ".pyapp-store-entries";

/// The name written to each `.dist-info/INSTALLER`.
pub const INSTALLER_NAME: &str = "pyapp";

/// Small metadata files read whole are refused beyond this size.
const MAX_METADATA_FILE: u64 = 64 * 1024 * 1024;

/// What placing a file costs besides its bytes, for cutting the work into chunks.
const FILE_COST: u64 = 16 * 1024;
/// About how much work one parallel chunk does (bytes to write plus [`FILE_COST`] a file).
const CHUNK_COST: u64 = 4 * 1024 * 1024;

/// How to install.
#[derive(Debug, Clone, Copy)]
pub struct InstallOptions {
    /// Check every file's size and hash against the wheel's RECORD (the spec requires it;
    /// turning it off is for wheels known to have bad RECORDs, and must be asked for).
    pub verify_record: bool,
    /// Compile bytecode after all wheels are in, with the venv's base interpreter started
    /// through this (which drops its privileges: see [`bytecode`]).
    pub compile_bytecode: Option<Confine>,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            verify_record: true,
            compile_bytecode: None,
        }
    }
}

/// Anything a wheel's archive can be read from, and cloned to be read on several threads.
pub trait WheelBytes: Read + Seek + Clone + Send + Sync {}

impl<T: Read + Seek + Clone + Send + Sync> WheelBytes for T {}

/// A wheel to install.
#[derive(Debug)]
pub struct WheelInput<R> {
    /// Its file name, `NAME-VERSION-TAGS.whl`.
    pub file_name: String,
    /// Its archive.
    pub bytes: R,
    pub placement: Placement,
}

/// How a wheel's files get into the venv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Extracted into the venv.
    Local,
    /// Hard-linked from the store entry of the wheel file with this sha256 (lowercase hex,
    /// vouched for by the caller), which is unpacked first if the store lacks it. Without
    /// a store, the same as `Local`. With `link_dirs`, a directory of the venv all of
    /// whose files the entry gives may instead be one symbolic link into it (`share`):
    /// for code that nothing sees through a different
    /// root than the venv's, and that does not find its own files by resolving links.
    /// `blocks_digest`, when the caller has it (the bundle's, of the verified wheel), is
    /// kept in a new entry ([`crate::store::BLOCKS_DIGEST_FILE`]).
    Shared {
        sha256: String,
        link_dirs: bool,
        blocks_digest: Option<[u8; 32]>,
    },
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

/// What [`install_from`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// The wheels, in the order given.
    pub wheels: Vec<InstalledWheel>,
    /// Things worth telling the user that did not stop the install (a newer minor
    /// `Wheel-Version`, files that did not compile to bytecode).
    pub warnings: Vec<String>,
    /// How it went, worth saying once (shared wheels copied, not linked).
    pub notes: Vec<String>,
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
    #[error("failed to compile bytecode with `{python}`: {reason}")]
    Compiler { python: PathBuf, reason: String },
    #[error("bytecode for `{path}`: {source}")]
    Bytecode { path: PathBuf, source: io::Error },
    #[error("failed to create the directory `{path}`: {source}")]
    Directory { path: PathBuf, source: io::Error },
    /// The shared store could not be read or written.
    #[error(transparent)]
    Store(pyapp_fs::FsError),
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
    #[error("{what} would be written into the system module `{module}` linked into the venv (system.python-modules)")]
    SystemModule { what: String, module: String },
    #[error("failed to write `{path}`: {source}")]
    Write { path: PathBuf, source: io::Error },
}

fn entry_problem(entry: &str, reason: impl Into<String>) -> WheelProblem {
    WheelProblem::Entry {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Install `wheels` (paths to `.whl` files) into `venv`, each extracted (no store), not
/// made durable (a build's venv); `on_installed` is called once per wheel when it is in
/// (from any thread: drive a progress bar with it). See [`install_from`].
pub fn install_wheels(
    venv: &Venv,
    wheels: &[PathBuf],
    options: &InstallOptions,
    on_installed: &(dyn Fn() + Sync),
) -> Result<InstallReport, WheelInstallError> {
    let names: Vec<String> = wheels.iter().map(|path| display_name(path)).collect();
    check_compatibility(venv, names.iter().map(String::as_str))?;
    let mut inputs = Vec::with_capacity(wheels.len());
    for (path, file_name) in wheels.iter().zip(names) {
        let bytes = WheelFile::open(path).map_err(|source| WheelInstallError::Wheel {
            wheel: file_name.clone(),
            problem: WheelProblem::Open {
                path: path.clone(),
                source,
            },
        })?;
        inputs.push(WheelInput {
            file_name,
            bytes,
            placement: Placement::Local,
        });
    }
    install_from(venv, inputs, None, options, &ToSync::new(), on_installed)
}

/// Where a wheel's files come from.
enum Source<R> {
    /// Its archive, validated: extracted into the venv, or first unpacked into the store
    /// as the entry `store_as`.
    Archive {
        wheel: WheelArchive<R>,
        store_as: Option<NewEntry>,
    },
    /// Its store entry (published before this install, or unpacked by it and published
    /// before it ends); `link_dirs` when its directories may be linked ([`share`]).
    Entry {
        layout: WheelLayout,
        entry: StoreEntry,
        link_dirs: bool,
    },
}

/// The store entry a shared wheel the store lacks is unpacked into.
struct NewEntry {
    sha256: String,
    link_dirs: bool,
    blocks_digest: Option<[u8; 32]>,
}

impl<R: WheelBytes> Source<R> {
    /// The store entry of a shared wheel when the store has it, its archive otherwise.
    fn open(
        input: WheelInput<R>,
        store: Option<&StoreSession>,
        options: &InstallOptions,
    ) -> Result<Self, WheelInstallError> {
        let wheel_error = |problem| WheelInstallError::Wheel {
            wheel: input.file_name.clone(),
            problem,
        };
        let store_as = match (input.placement, store) {
            (
                Placement::Shared {
                    sha256,
                    link_dirs,
                    blocks_digest,
                },
                Some(store),
            ) => {
                let link_dirs = link_dirs && options.compile_bytecode.is_none();
                if let Some(entry) = store.find(&sha256).map_err(WheelInstallError::Store)? {
                    let layout =
                        WheelLayout::of_entry(&input.file_name, &entry).map_err(wheel_error)?;
                    return Ok(Source::Entry {
                        layout,
                        entry,
                        link_dirs,
                    });
                }
                Some(NewEntry {
                    sha256,
                    link_dirs,
                    blocks_digest,
                })
            }
            _ => None,
        };
        let wheel = WheelArchive::read(&input.file_name, input.bytes, options.verify_record)
            .map_err(wheel_error)?;
        Ok(Source::Archive { wheel, store_as })
    }

    fn layout(&self) -> &WheelLayout {
        match self {
            Source::Archive { wheel, .. } => &wheel.layout,
            Source::Entry { layout, .. } => layout,
        }
    }
}

/// The size of each file the wheel `file_name` holds, as its central directory declares
/// it (extraction writes no more than that): what installing it will write, known before
/// anything is.
pub fn declared_sizes<R: Read + Seek>(
    file_name: &str,
    bytes: R,
) -> Result<Vec<u64>, WheelInstallError> {
    let zip_error = |err| WheelInstallError::Wheel {
        wheel: file_name.to_owned(),
        problem: WheelProblem::Zip(err),
    };
    let archive = zip::ZipArchive::new(bytes).map_err(zip_error)?;
    (0..archive.len())
        .map(|index| {
            let entry = archive.by_index_data(index).map_err(zip_error)?;
            Ok(if entry.is_dir() { 0 } else { entry.size() })
        })
        .collect()
}

/// Install `wheels` into `venv`, the shared ones through `store` (when given), listing in
/// `to_sync` every directory of the venv given entries and every file written into it
/// (links to the store's files, durable already, are not); `on_installed` is called once
/// per wheel when its files are in (from any thread).
///
/// Nothing is written unless every wheel fits the venv's interpreter, is valid and none
/// writes a path another one writes. A failure while writing leaves a partial venv: it is
/// meant to be built in a staging directory that is thrown away on error. The store is
/// only ever given complete, verified, durable entries.
pub fn install_from<R: WheelBytes>(
    venv: &Venv,
    wheels: Vec<WheelInput<R>>,
    store: Option<&StoreSession>,
    options: &InstallOptions,
    to_sync: &ToSync,
    on_installed: &(dyn Fn() + Sync),
) -> Result<InstallReport, WheelInstallError> {
    check_compatibility(venv, wheels.iter().map(|w| w.file_name.as_str()))?;
    let sources = wheels
        .into_par_iter()
        .map(|wheel| Source::open(wheel, store, options))
        .collect::<Result<Vec<_>, _>>()?;
    let plans = sources
        .par_iter()
        .map(|source| {
            let layout = source.layout();
            WheelPlan::new(venv, layout).map_err(|problem| WheelInstallError::Wheel {
                wheel: layout.file_name(),
                problem,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pairs: Vec<(&WheelLayout, &WheelPlan)> =
        sources.iter().map(Source::layout).zip(&plans).collect();
    check_conflicts(venv, &pairs)?;
    let store_to_sync = ToSync::new();
    let (sources, unpacked) = match store {
        Some(store) => unpack_into_store(store, sources, &plans, &store_to_sync)?,
        None => (sources, Vec::new()),
    };
    let shared = match store {
        Some(store) => {
            let candidates: Vec<Candidate> = sources
                .par_iter()
                .zip(&plans)
                .map(|(source, plan)| match source {
                    Source::Entry {
                        layout,
                        entry,
                        link_dirs: true,
                    } => Candidate {
                        layout,
                        plan,
                        entry: Some(entry),
                        whole_dist_info: whole_dist_info(layout, entry, plan),
                    },
                    _ => Candidate {
                        layout: source.layout(),
                        plan,
                        entry: None,
                        whole_dist_info: false,
                    },
                })
                .collect();
            share::plan(venv, store.dir(), &candidates)
        }
        None => SharedDirs::default(),
    };

    let copying = AtomicBool::new(false);
    // The new store entries are made durable while their files are linked, then published.
    let (rows, synced) = std::thread::scope(|scope| {
        let syncing = store
            .filter(|_| !unpacked.is_empty())
            .map(|store| scope.spawn(|| store.sync(&unpacked, &store_to_sync)));
        let rows = place_all(
            venv,
            &sources,
            &plans,
            &shared,
            &copying,
            to_sync,
            on_installed,
        );
        let synced = syncing.map(|syncing| {
            syncing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (rows, synced)
    });
    let rows = rows?;
    let copying = copying.into_inner();
    if let (Some(store), Some(synced)) = (store, synced) {
        synced.map_err(WheelInstallError::Store)?;
        let lost = store.publish(unpacked).map_err(WheelInstallError::Store)?;
        adopt_published(&sources, &plans, &shared, &lost)?;
    }
    let installed = sources
        .par_iter()
        .zip(&plans)
        .zip(rows)
        .enumerate()
        .map(|(at, ((source, plan), rows))| {
            let linked = shared.links_dist_info(at);
            finish_wheel(venv, source, plan, rows, linked, copying, to_sync)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = InstallReport {
        wheels: installed,
        warnings: sources
            .iter()
            .flat_map(|source| source.layout().warnings.clone())
            .collect(),
        notes: Vec::new(),
    };
    if let (true, Some(store)) = (copying, store) {
        report.notes.push(format!(
            "the store `{}` is on another filesystem than `{}`: shared wheels were copied into the venv, not hard-linked",
            store.dir().display(),
            venv.root().display()
        ));
    }
    if let Some(confine) = options.compile_bytecode {
        report
            .warnings
            .extend(compile_bytecode(venv, &plans, confine, to_sync)?);
    }
    Ok(report)
}

/// Whether the `.dist-info` of `entry`, published before this install, is the whole one
/// `plan` would give the venv: its RECORD names no venv and the entry keeps this text
/// ([`own_files`]).
fn whole_dist_info(layout: &WheelLayout, entry: &StoreEntry, plan: &WheelPlan) -> bool {
    if !entry.is_published() || !own_files::venv_independent(layout, plan) {
        return false;
    }
    let rows = own_files::entry_rows(&entry.index, plan);
    let (own, _) = OwnFiles::new(&layout.dist_info, &plan.lib_dir, rows);
    own.linkable_in(entry.home(), &layout.dist_info)
}

/// Consecutive ranges of files whose `costs` add up to about [`CHUNK_COST`] each (one
/// empty range when there are no files, so that every wheel has a chunk).
fn chunks(costs: impl Iterator<Item = u64>) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut end, mut sum) = (0, 0, 0);
    for (index, cost) in costs.enumerate() {
        sum += cost;
        end = index + 1;
        if sum >= CHUNK_COST {
            ranges.push(start..end);
            (start, sum) = (end, 0);
        }
    }
    if start < end || ranges.is_empty() {
        ranges.push(start..end);
    }
    ranges
}

/// Unpacks the shared wheels the store lacks into new entries under the store's `tmp/`
/// (in parallel chunks of files), listing what is written in `to_sync`; returns the
/// sources with those wheels read from their new entries, and the entries, to be
/// published once durable and linked from the venv (its directory links point where
/// they are published: [`StoreEntry::published_file`]). An entry whose RECORD is the same
/// in every venv keeps that and `INSTALLER` too ([`own_files`]).
fn unpack_into_store<R: WheelBytes>(
    store: &StoreSession,
    sources: Vec<Source<R>>,
    plans: &[WheelPlan],
    to_sync: &ToSync,
) -> Result<(Vec<Source<R>>, Vec<PendingEntry>), WheelInstallError> {
    let mut unpacking: Vec<(usize, &WheelArchive<R>, &NewEntry, PendingEntry)> = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        if let Source::Archive {
            wheel,
            store_as: Some(new),
        } = source
        {
            let pending = store
                .start_entry(&new.sha256, to_sync)
                .map_err(WheelInstallError::Store)?;
            unpacking.push((index, wheel, new, pending));
        }
    }
    if unpacking.is_empty() {
        return Ok((sources, Vec::new()));
    }
    for (_, wheel, _, pending) in &unpacking {
        let files_dir = pending.files_dir();
        let dests: Vec<PathBuf> = wheel
            .layout
            .files
            .iter()
            .map(|f| files_dir.join(&f.entry))
            .collect();
        create_parents(&files_dir, dests.iter().map(PathBuf::as_path), to_sync)
            .map_err(|(path, source)| WheelInstallError::Directory { path, source })?;
    }
    let tasks: Vec<(usize, Range<usize>)> = unpacking
        .iter()
        .enumerate()
        .flat_map(|(at, (_, wheel, _, _))| {
            let costs = wheel.layout.files.iter().map(|f| f.size + FILE_COST);
            chunks(costs).into_iter().map(move |range| (at, range))
        })
        .collect();
    let unpacked = tasks
        .par_iter()
        .map(|(at, range)| {
            let (_, wheel, _, pending) = &unpacking[*at];
            unpack_chunk(wheel, &pending.files_dir(), range.clone(), to_sync)
                .map(|files| (*at, files))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut indexes: Vec<Vec<IndexedFile>> = vec![Vec::new(); unpacking.len()];
    for (at, files) in unpacked {
        indexes[at].extend(files);
    }
    let mut finished: HashMap<usize, StoreEntry> = HashMap::new();
    let mut pending = Vec::with_capacity(unpacking.len());
    for ((index, wheel, new, entry), files) in unpacking.into_iter().zip(indexes) {
        let index_file = EntryIndex {
            index_format: INDEX_FORMAT,
            wheel: wheel.layout.file_name(),
            dist_info: wheel.layout.dist_info.clone(),
            files,
        };
        let complete = entry
            .finish(index_file, new.blocks_digest, to_sync)
            .map_err(WheelInstallError::Store)?;
        let plan = &plans[index];
        if own_files::venv_independent(&wheel.layout, plan) {
            let rows = own_files::entry_rows(&complete.index, plan);
            let (own, _) = OwnFiles::new(&wheel.layout.dist_info, &plan.lib_dir, rows);
            own.keep_in_entry(entry.dir(), &wheel.layout.dist_info, to_sync)
                .map_err(|problem| WheelInstallError::Wheel {
                    wheel: wheel.layout.file_name(),
                    problem,
                })?;
        }
        finished.insert(index, complete);
        pending.push(entry);
    }
    fault::point("store-unpacked");
    let sources = sources
        .into_iter()
        .enumerate()
        .map(|(index, source)| match (source, finished.remove(&index)) {
            (Source::Archive { wheel, store_as }, Some(entry)) => Source::Entry {
                layout: wheel.layout,
                entry,
                link_dirs: store_as.is_some_and(|new| new.link_dirs),
            },
            (source, _) => source,
        })
        .collect();
    Ok((sources, pending))
}

/// Extracts the files `range` of `wheel` into a store entry's `files_dir`, unchanged,
/// listing them in `to_sync`.
fn unpack_chunk<R: WheelBytes>(
    wheel: &WheelArchive<R>,
    files_dir: &Path,
    range: Range<usize>,
    to_sync: &ToSync,
) -> Result<Vec<IndexedFile>, WheelInstallError> {
    let mut archive = wheel.archive.clone();
    let mut scratch = Scratch::new();
    range
        .map(|at| {
            let file = &wheel.layout.files[at];
            let extraction = Extraction {
                index: wheel.indexes[at],
                entry: &file.entry,
                expected: wheel.record.as_ref().and_then(|r| r.get(&file.entry)),
                dest: &files_dir.join(&file.entry),
                mode: file.mode,
                python: None,
            };
            let written = extract_file(&mut archive, &extraction, &mut scratch, to_sync)?;
            Ok(IndexedFile {
                path: file.entry.clone(),
                sha256: written.sha256,
                size: written.size,
                executable: file.mode == 0o755,
            })
        })
        .collect::<Result<Vec<_>, WheelProblem>>()
        .map_err(|problem| WheelInstallError::Wheel {
            wheel: wheel.layout.file_name(),
            problem,
        })
}

/// Remakes, from the entries another install published first (`lost`, their
/// `wheels/SHA256`), the venv's hard links into the new entries this install unpacked and
/// could not publish, for each wheel whose directories are linked there: those links are
/// what keep the entry the venv's directory links point into in use (FORMAT.md 6.6), and
/// they led to the files of an entry that was just dropped. Each link is made beside its
/// file and renamed over it, in a directory listed to be synced.
fn adopt_published<R: WheelBytes>(
    sources: &[Source<R>],
    plans: &[WheelPlan],
    shared: &SharedDirs,
    lost: &[PathBuf],
) -> Result<(), WheelInstallError> {
    for (at, (source, plan)) in sources.iter().zip(plans).enumerate() {
        let Source::Entry { entry, .. } = source else {
            continue;
        };
        if !shared.covers_any(at) || !lost.iter().any(|home| home == entry.home()) {
            continue;
        }
        for (file, (indexed, planned)) in entry.index.files.iter().zip(&plan.files).enumerate() {
            if shared.covers(at, file) || planned.script {
                continue;
            }
            let write_error = |err: io::Error| WheelInstallError::Wheel {
                wheel: source.layout().file_name(),
                problem: WheelProblem::Write {
                    path: planned.dest.clone(),
                    source: err,
                },
            };
            let mut beside = planned.dest.clone().into_os_string();
            beside.push(".pyapp-adopt");
            let beside = PathBuf::from(beside);
            std::fs::hard_link(entry.published_file(&indexed.path), &beside)
                .map_err(write_error)?;
            std::fs::rename(&beside, &planned.dest).map_err(write_error)?;
        }
    }
    Ok(())
}

/// Puts every planned file in place, in parallel chunks across all wheels, once their
/// directories (and those of the files [`finish_wheel`] writes and of the links of
/// `shared`) are made, then the links of `shared` (or, when shared wheels had to be
/// copied, the files they would have brought); returns each wheel's RECORD rows in its
/// files' order. What is written is listed in `to_sync`.
fn place_all<R: WheelBytes>(
    venv: &Venv,
    sources: &[Source<R>],
    plans: &[WheelPlan],
    shared: &SharedDirs,
    copying: &AtomicBool,
    to_sync: &ToSync,
    on_installed: &(dyn Fn() + Sync),
) -> Result<Vec<Vec<RecordRow>>, WheelInstallError> {
    // A linked `.dist-info` brings its INSTALLER and RECORD (and is no directory to make).
    let generated: Vec<PathBuf> = sources
        .iter()
        .zip(plans)
        .enumerate()
        .filter(|(at, _)| !shared.links_dist_info(*at))
        .flat_map(|(_, (source, plan))| generated_files(venv, source.layout(), plan))
        .collect();
    let markers = entry_markers(venv, sources, shared);
    let dests = plans
        .iter()
        .enumerate()
        .flat_map(|(at, plan)| {
            plan.files
                .iter()
                .enumerate()
                .filter(move |(file, _)| !shared.covers(at, *file))
                .map(|(_, f)| f.dest.as_path())
        })
        .chain(generated.iter().map(PathBuf::as_path))
        .chain(shared.links.iter().map(|link| link.path.as_path()));
    create_parents(venv.root(), dests, to_sync)
        .map_err(|(path, source)| WheelInstallError::Directory { path, source })?;
    let tasks: Vec<(usize, Range<usize>)> = sources
        .iter()
        .enumerate()
        .flat_map(|(at, source)| {
            let files = &source.layout().files;
            let costs: Vec<u64> = match source {
                Source::Archive { .. } => files.iter().map(|f| f.size + FILE_COST).collect(),
                Source::Entry { .. } => files.iter().map(|_| FILE_COST).collect(),
            };
            chunks(costs.into_iter())
                .into_iter()
                .map(move |range| (at, range))
        })
        .collect();
    let mut left: Vec<AtomicUsize> = sources.iter().map(|_| AtomicUsize::new(0)).collect();
    for (at, _) in &tasks {
        *left[*at].get_mut() += 1;
    }
    let done = AtomicUsize::new(0);
    let python = venv.runtime_python();
    let placed = tasks
        .par_iter()
        .map(|(at, range)| {
            let rows = place_chunk(
                &sources[*at],
                &plans[*at],
                range.clone(),
                &|file| shared.covers(*at, file),
                copying,
                &python,
                to_sync,
            )?;
            if left[*at].fetch_sub(1, Ordering::SeqCst) == 1 {
                on_installed();
            }
            if done.fetch_add(1, Ordering::SeqCst) + 1 == tasks.len().div_ceil(2) {
                fault::point("mid-link");
            }
            Ok((*at, rows))
        })
        .collect::<Result<Vec<_>, WheelInstallError>>()?;
    let mut rows: Vec<Vec<RecordRow>> = vec![Vec::new(); sources.len()];
    for (at, chunk) in placed {
        rows[at].extend(chunk);
    }
    if copying.load(Ordering::Relaxed) {
        place_unshared(venv, sources, plans, shared, copying, to_sync)?;
    } else {
        for link in &shared.links {
            std::os::unix::fs::symlink(&link.target, &link.path).map_err(|source| {
                WheelInstallError::Directory {
                    path: link.path.clone(),
                    source,
                }
            })?;
        }
        // Made only now: a venv that had to copy (above) links no `.dist-info`.
        create_parents(
            venv.root(),
            markers.iter().map(|(_, m)| m.as_path()),
            to_sync,
        )
        .map_err(|(path, source)| WheelInstallError::Directory { path, source })?;
        for (index, marker) in &markers {
            std::fs::hard_link(index, marker).map_err(|source| WheelInstallError::Directory {
                path: marker.clone(),
                source,
            })?;
        }
    }
    Ok(rows)
}

/// For each wheel whose `.dist-info` `shared` links: its entry's `index.json` and the hard
/// link to it the venv keeps in [`STORE_ENTRIES_DIR`].
fn entry_markers<R: WheelBytes>(
    venv: &Venv,
    sources: &[Source<R>],
    shared: &SharedDirs,
) -> Vec<(PathBuf, PathBuf)> {
    sources
        .iter()
        .enumerate()
        .filter_map(|(at, source)| match source {
            Source::Entry { entry, .. } if shared.links_dist_info(at) => {
                let sha256 = entry.home().file_name()?;
                let marker = venv.root().join(STORE_ENTRIES_DIR).join(sha256);
                Some((entry.home().join("index.json"), marker))
            }
            _ => None,
        })
        .collect()
}

/// Copies the files the links of `shared` were to bring: the store turned out to be on
/// another filesystem (a link failed with EXDEV), so the venv's copies of the shared
/// wheels' files do not keep their entries in use, and a link into an entry would not
/// either. Listed in `to_sync`.
fn place_unshared<R: WheelBytes>(
    venv: &Venv,
    sources: &[Source<R>],
    plans: &[WheelPlan],
    shared: &SharedDirs,
    copying: &AtomicBool,
    to_sync: &ToSync,
) -> Result<(), WheelInstallError> {
    let covered = plans.iter().enumerate().flat_map(|(at, plan)| {
        plan.files
            .iter()
            .enumerate()
            .filter(move |(file, _)| shared.covers(at, *file))
            .map(|(_, f)| f.dest.as_path())
    });
    create_parents(venv.root(), covered, to_sync)
        .map_err(|(path, source)| WheelInstallError::Directory { path, source })?;
    let python = venv.runtime_python();
    (0..sources.len())
        .into_par_iter()
        .filter(|at| shared.covers_any(*at))
        .try_for_each(|at| {
            let plan = &plans[at];
            let skip = |file| !shared.covers(at, file);
            let all = 0..plan.files.len();
            place_chunk(&sources[at], plan, all, &skip, copying, &python, to_sync).map(drop)
        })
}

/// Puts the files `range` of one wheel in place: extracted from its archive, or linked
/// from its store entry (what is written listed in `to_sync`), except those of a store
/// entry `skip` names (a directory link brings them); their RECORD rows.
fn place_chunk<R: WheelBytes>(
    source: &Source<R>,
    plan: &WheelPlan,
    range: Range<usize>,
    skip: &dyn Fn(usize) -> bool,
    copying: &AtomicBool,
    python: &Path,
    to_sync: &ToSync,
) -> Result<Vec<RecordRow>, WheelInstallError> {
    let layout = source.layout();
    let mut scratch = Scratch::new();
    let placed = match source {
        Source::Archive { wheel, .. } => {
            let mut archive = wheel.archive.clone();
            range
                .map(|at| {
                    let (file, planned) = (&layout.files[at], &plan.files[at]);
                    let extraction = Extraction {
                        index: wheel.indexes[at],
                        entry: &file.entry,
                        expected: wheel.record.as_ref().and_then(|r| r.get(&file.entry)),
                        dest: &planned.dest,
                        mode: file.mode,
                        python: planned.script.then_some(python),
                    };
                    extract_file(&mut archive, &extraction, &mut scratch, to_sync)
                        .map(|written| written.record_row(&plan.lib_dir, &planned.dest))
                })
                .collect::<Result<Vec<_>, WheelProblem>>()
        }
        Source::Entry { entry, .. } => range
            .map(|at| {
                let (indexed, planned) = (&entry.index.files[at], &plan.files[at]);
                if skip(at) {
                    let written = Written {
                        sha256: indexed.sha256,
                        size: indexed.size,
                    };
                    return Ok(written.record_row(&plan.lib_dir, &planned.dest));
                }
                place_from_store(
                    copying,
                    &entry.file(&indexed.path),
                    indexed,
                    &planned.dest,
                    layout.files[at].mode,
                    planned.script.then_some(python),
                    scratch.copy_buffer(),
                    to_sync,
                )
                .map(|written| written.record_row(&plan.lib_dir, &planned.dest))
            })
            .collect(),
    };
    placed.map_err(|problem| WheelInstallError::Wheel {
        wheel: layout.file_name(),
        problem,
    })
}

/// The files [`finish_wheel`] writes for a wheel: its launchers, then `INSTALLER` and
/// `RECORD`.
fn generated_files(venv: &Venv, layout: &WheelLayout, plan: &WheelPlan) -> Vec<PathBuf> {
    let dist_info = plan.lib_dir.join(&layout.dist_info);
    layout
        .launchers
        .iter()
        .map(|launcher| venv.scripts_dir().join(&launcher.name))
        .chain([dist_info.join("INSTALLER"), dist_info.join("RECORD")])
        .collect()
}

/// A wheel's launchers, `INSTALLER` and RECORD, once its files are in (their directories
/// made by [`place_all`]); what is written is listed in `to_sync`. The last two come
/// through the link when its `.dist-info` was planned as one (`dist_info_linked`) and the
/// venv links the entry's files (not `copying`), and are hard links into its store entry
/// when it keeps them.
fn finish_wheel<R: WheelBytes>(
    venv: &Venv,
    source: &Source<R>,
    plan: &WheelPlan,
    mut rows: Vec<RecordRow>,
    dist_info_linked: bool,
    copying: bool,
    to_sync: &ToSync,
) -> Result<InstalledWheel, WheelInstallError> {
    let layout = source.layout();
    let wheel_error = |problem| WheelInstallError::Wheel {
        wheel: layout.file_name(),
        problem,
    };
    let python = venv.runtime_python();
    for launcher in &layout.launchers {
        let path = venv.scripts_dir().join(&launcher.name);
        let contents = launcher.launcher(&python);
        rows.push(
            write_generated(&path, &contents, 0o755, &plan.lib_dir, to_sync)
                .map_err(wheel_error)?,
        );
    }
    let files = if dist_info_linked && !copying {
        rows.len() + OwnFiles::COUNT
    } else {
        let linked_from = match source {
            Source::Entry { entry, .. }
                if !copying && own_files::venv_independent(layout, plan) =>
            {
                Some(entry.home())
            }
            _ => None,
        };
        let (own, files) = OwnFiles::new(&layout.dist_info, &plan.lib_dir, rows);
        own.put(&plan.lib_dir.join(&layout.dist_info), linked_from, to_sync)
            .map_err(wheel_error)?;
        files
    };
    Ok(InstalledWheel {
        wheel: layout.file_name(),
        name: layout.name.name().to_string(),
        version: layout.name.version().to_string(),
        files,
    })
}

/// Compiles the installed `.py` files with the venv's base interpreter, started through
/// `confine` ([`bytecode`]); the `.pyc` files and their directories are listed in
/// `to_sync`.
fn compile_bytecode(
    venv: &Venv,
    plans: &[WheelPlan],
    confine: Confine,
    to_sync: &ToSync,
) -> Result<Vec<String>, WheelInstallError> {
    let sources: Vec<PathBuf> = plans
        .iter()
        .flat_map(|plan| &plan.files)
        .filter(|file| file.dest.extension().is_some_and(|e| e == "py"))
        .map(|file| file.dest.clone())
        .collect();
    bytecode::compile(
        &venv.interpreter().base_executable,
        &sources,
        confine,
        to_sync,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
