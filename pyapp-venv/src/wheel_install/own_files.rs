//! A wheel's `.dist-info/INSTALLER` and `RECORD`, the venv's own files (FORMAT.md 6.6):
//! what they hold, and where they come from.
//!
//! When nothing in RECORD names the venv (the wheel has no launcher and no `.data/scripts`
//! file whose `#!python` is rewritten: [`venv_independent`]), every venv installing the
//! wheel with the same layout gets the same two files. The store entry then keeps them
//! beside its `index.json`, written when it is unpacked and made durable with it:
//! `INSTALLER`, and `RECORD-SHA256`, named by the sha256 of its text (the paths of a
//! `.data/headers` file name the Python version, so one entry may serve two texts). A venv
//! that links the entry's files hard-links those two as well, and nothing is written for
//! it. The entry's `files/NAME.dist-info/` gets them too (hard links of the same two), so
//! that it is the whole `.dist-info` of a venv whose RECORD has that text: a later venv
//! may link the directory itself (`share`, [`OwnFiles::linkable_in`]). Otherwise
//! (launchers, scripts, a copying install, an entry that does not have that text:
//! another Python's, or unpacked by an older pyapp-install) they are written into the
//! venv, as they always were. Nobody writes either in place: a venv's file is only ever
//! unlinked, so a shared inode is never changed under another venv.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::layout::{WheelLayout, WheelPlan};
use super::place::{create_file, Written};
use super::record::{self, RecordRow};
use super::{WheelProblem, INSTALLER_NAME};
use crate::store::EntryIndex;
use pyapp_fs::ToSync;

/// The `INSTALLER` and `RECORD` of one wheel in one venv.
pub struct OwnFiles {
    installer: String,
    record: String,
    /// `RECORD-SHA256`: the name of the record's copy in a store entry.
    record_name: String,
}

/// Whether the wheel's RECORD is the same in every venv of its layout: no launcher and no
/// `.data/scripts` file (whose `#!python` line names the venv's interpreter).
pub fn venv_independent(layout: &WheelLayout, plan: &WheelPlan) -> bool {
    layout.launchers.is_empty() && !plan.files.iter().any(|file| file.script)
}

/// The RECORD rows of a wheel read from its store entry's `index`, placed as `plan` says
/// (for a [`venv_independent`] wheel, what placing its files gives).
pub fn entry_rows(index: &EntryIndex, plan: &WheelPlan) -> Vec<RecordRow> {
    index
        .files
        .iter()
        .zip(&plan.files)
        .map(|(indexed, planned)| {
            Written {
                sha256: indexed.sha256,
                size: indexed.size,
            }
            .record_row(&plan.lib_dir, &planned.dest)
        })
        .collect()
}

impl OwnFiles {
    /// How many they are (`INSTALLER` and `RECORD`), each with its RECORD row.
    pub const COUNT: usize = 2;

    /// The files of the wheel whose `.dist-info` is `dist_info` in `lib_dir`, and whose
    /// other files' RECORD rows are `rows`; returns them and the number of RECORD rows.
    pub fn new(dist_info: &str, lib_dir: &Path, mut rows: Vec<RecordRow>) -> (OwnFiles, usize) {
        let installer = format!("{INSTALLER_NAME}\n");
        let written = Written {
            sha256: Sha256::digest(installer.as_bytes()).into(),
            size: installer.len() as u64,
        };
        rows.push(written.record_row(lib_dir, &lib_dir.join(dist_info).join("INSTALLER")));
        rows.push(RecordRow {
            path: format!("{dist_info}/RECORD"),
            hash: None,
            size: None,
        });
        let record = record::write_record(&rows);
        let record_name = format!("RECORD-{}", hex::encode(Sha256::digest(record.as_bytes())));
        let files = OwnFiles {
            installer,
            record,
            record_name,
        };
        (files, rows.len())
    }

    /// (name in a store entry, name in `.dist-info`, contents).
    fn each(&self) -> [(&str, &str, &str); OwnFiles::COUNT] {
        [
            ("INSTALLER", "INSTALLER", &self.installer),
            (&self.record_name, "RECORD", &self.record),
        ]
    }

    /// Writes the entry's copies into `entry_dir`, a store entry being unpacked, listed in
    /// `to_sync`, and links them into its `files/DIST_INFO/`.
    pub fn keep_in_entry(
        &self,
        entry_dir: &Path,
        dist_info: &str,
        to_sync: &ToSync,
    ) -> Result<(), WheelProblem> {
        let inside = entry_dir.join("files").join(dist_info);
        self.each()
            .into_iter()
            .try_for_each(|(stored, name, text)| {
                let kept = entry_dir.join(stored);
                write(&kept, text, to_sync)?;
                let dest = inside.join(name);
                fs::hard_link(&kept, &dest)
                    .map_err(|source| WheelProblem::Write { path: dest, source })
            })
    }

    /// Whether the `.dist-info` of the published entry `entry` (its `files/DIST_INFO/`) is
    /// this venv's whole `.dist-info`: its `RECORD` is the entry's copy of this text.
    pub fn linkable_in(&self, entry: &Path, dist_info: &str) -> bool {
        use std::os::unix::fs::MetadataExt;
        let inode = |path: &Path| fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
        let kept = inode(&entry.join(&self.record_name));
        kept.is_some() && kept == inode(&entry.join("files").join(dist_info).join("RECORD"))
    }

    /// Puts both into the venv's `.dist-info` directory `dist_info`: hard links to the
    /// copies the published store entry `entry` keeps, when given and it has them, written
    /// (and listed in `to_sync`) otherwise.
    pub fn put(
        &self,
        dist_info: &Path,
        entry: Option<&Path>,
        to_sync: &ToSync,
    ) -> Result<(), WheelProblem> {
        for (stored, name, text) in self.each() {
            let dest = dist_info.join(name);
            if let Some(entry) = entry {
                match fs::hard_link(entry.join(stored), &dest) {
                    Ok(()) => continue,
                    Err(err) if is_absent_or_elsewhere(&err) => {}
                    Err(source) => return Err(WheelProblem::Write { path: dest, source }),
                }
            }
            write(&dest, text, to_sync)?;
        }
        Ok(())
    }
}

/// The entry has no such copy, or it is on another filesystem than the venv.
fn is_absent_or_elsewhere(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(nix::libc::ENOENT | nix::libc::EXDEV)
    )
}

fn write(path: &Path, text: &str, to_sync: &ToSync) -> Result<(), WheelProblem> {
    let mut file = create_file(path, 0o644)?;
    file.write_all(text.as_bytes())
        .map_err(|source| WheelProblem::Write {
            path: path.to_path_buf(),
            source,
        })?;
    to_sync.file(&file, path);
    Ok(())
}
