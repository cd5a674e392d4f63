//! The shared store, `APPS/.store/` (spec/FORMAT.md 6.6): every `shared` wheel unpacked once
//! for the whole machine, keyed by the sha256 of the wheel file, and hard-linked into the
//! venv of each release that installs it, so two apps or two releases pay for it once.
//!
//! `wheels/SHA256/` holds a complete entry: `files/` (the wheel's files by archive entry
//! name, root-owned, 0644 or 0755), `index.json` (each file's sha256, size and mode, so
//! that linking needs no hashing), the wheel's blocks digest ([`BLOCKS_DIGEST_FILE`])
//! and, for a wheel whose RECORD names no venv, the venv's `INSTALLER` and
//! `RECORD-SHA256` to hard-link (`wheel_install::own_files`). An entry is unpacked under
//! `tmp/` (the venv links its files from there), made durable (every file and directory
//! written into it, as the unpacking listed them) and renamed into `wheels/`; it is
//! renamed back under `tmp/` before it is deleted. A visible entry is therefore always
//! whole, and a kill leaves at most garbage under `tmp/`.
//!
//! There is no reference count that could drift: an entry is in use while one of its files
//! has another hard link (a release, or a staging directory, holds it). Installers hold
//! `lock` shared from the moment they look entries up until their links are made; the
//! garbage collector holds it exclusively, so it never judges an entry about to be linked,
//! and it is the only one that deletes.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use pyapp_fs::{FsError, Result, ToSync};
use serde::{Deserialize, Serialize};

use pyapp_fs::fault;
use pyapp_fs::lock::open_lock_file;
use pyapp_fs::state::{self, Versioned};

/// The store's directory name under the apps directory (never an app name: those start
/// with a letter).
pub const STORE_DIR: &str = ".store";

/// The file of an entry holding the digest of the wheel's 64 KiB blocks' BLAKE3 digests
/// (`pyapp_bundle::reader::Bundle::blocks_digest`), lowercase hex: a bundle's copy of the
/// wheel with the same blocks digest is the very wheel this entry was unpacked from.
pub const BLOCKS_DIGEST_FILE: &str = "blocks.blake3";

/// The version of `index.json`'s layout.
pub const INDEX_FORMAT: u32 = 1;

/// The store of one apps directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// `index.json` of an entry: what the wheel holds, as unpacked and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EntryIndex {
    pub index_format: u32,
    /// The wheel's file name.
    pub wheel: String,
    /// Its `.dist-info` directory.
    pub dist_info: String,
    /// Every file under `files/`, in the wheel's order.
    pub files: Vec<IndexedFile>,
}

impl EntryIndex {
    /// What installing this entry into a venv can write at most: each file (copied when
    /// the venv is on another filesystem than the store), and the venv's own `RECORD` (a
    /// row per file: its path, sha256 and size) and `INSTALLER`.
    pub fn installed_sizes(&self) -> impl Iterator<Item = u64> + '_ {
        const ROW: u64 = 96;
        let record = self
            .files
            .iter()
            .map(|file| file.path.len() as u64 + ROW)
            .sum();
        self.files.iter().map(|file| file.size).chain([record, 64])
    }
}

impl Versioned for EntryIndex {
    const WHAT: &'static str = "store index";
    const FORMAT_FIELD: &'static str = "index-format";
    const FORMAT: u32 = INDEX_FORMAT;
}

/// One file of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct IndexedFile {
    /// The archive entry name, also its path under `files/`.
    pub path: String,
    /// The sha256 of its contents, lowercase hex.
    #[serde(with = "hex::serde")]
    pub sha256: [u8; 32],
    pub size: u64,
    /// Mode 0755 rather than 0644.
    pub executable: bool,
}

/// A complete entry of the store.
#[derive(Debug, Clone)]
pub struct StoreEntry {
    dir: PathBuf,
    /// `wheels/SHA256`: where it is published (`dir`, or where an entry just unpacked
    /// under `tmp/` goes).
    home: PathBuf,
    pub index: EntryIndex,
}

impl StoreEntry {
    /// Where the entry keeps the file of archive entry `name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join("files").join(name)
    }

    /// `wheels/SHA256`, where the entry is published.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Whether the entry is where it is published (it was, before this install found it),
    /// rather than one this install unpacked under `tmp/`.
    pub fn is_published(&self) -> bool {
        self.dir == self.home
    }

    /// Where the file of archive entry `name` is once the entry is published.
    pub fn published_file(&self, name: &str) -> PathBuf {
        self.home.join("files").join(name)
    }
}

/// An entry being unpacked under `tmp/`; removed when dropped unless published.
#[derive(Debug)]
pub struct PendingEntry {
    dir: PathBuf,
    /// `wheels/SHA256`.
    home: PathBuf,
}

impl PendingEntry {
    /// The entry's directory under `tmp/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the wheel's files go.
    pub fn files_dir(&self) -> PathBuf {
        self.dir.join("files")
    }

    /// Writes `index.json` and, when given, the wheel's blocks digest
    /// ([`BLOCKS_DIGEST_FILE`]), listed in `to_sync`; the entry is then complete, to be
    /// linked from where it is and published once durable.
    pub fn finish(
        &self,
        index: EntryIndex,
        blocks_digest: Option<[u8; 32]>,
        to_sync: &ToSync,
    ) -> Result<StoreEntry> {
        let path = self.dir.join("index.json");
        let json = serde_json::to_vec(&index).map_err(|source| FsError::InvalidState {
            path: path.clone(),
            what: EntryIndex::WHAT,
            source,
        })?;
        self.write_new(&path, &json, to_sync)?;
        if let Some(digest) = blocks_digest {
            let text = format!("{}\n", hex::encode(digest));
            self.write_new(&self.dir.join(BLOCKS_DIGEST_FILE), text.as_bytes(), to_sync)?;
        }
        Ok(StoreEntry {
            dir: self.dir.clone(),
            home: self.home.clone(),
            index,
        })
    }

    /// Creates the file `path` of the entry (0644) with `bytes`, listed in `to_sync`.
    fn write_new(&self, path: &Path, bytes: &[u8], to_sync: &ToSync) -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
            .map_err(FsError::io("create", path))?;
        io::Write::write_all(&mut file, bytes).map_err(FsError::io("write", path))?;
        to_sync.file(&file, path);
        Ok(())
    }
}

impl Drop for PendingEntry {
    /// Removes the entry unless it was published (then nothing is left at its old path).
    fn drop(&mut self) {
        // Best effort: a leftover under tmp/ is removed by the next exclusive holder.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The store opened by an install: the lock held shared until it is dropped.
#[derive(Debug)]
pub struct StoreSession {
    store: Store,
    _lock: File,
    known: KnownIndexes,
}

/// The indexes of published entries an install read before it held the store's lock
/// ([`Store::published_index`]), for [`StoreSession::find`] to take instead of reading
/// them again: a published entry never changes (one published again after a garbage
/// collection is of the same wheel, so its index is the same).
#[derive(Debug, Default)]
pub struct KnownIndexes(Mutex<HashMap<String, EntryIndex>>);

impl KnownIndexes {
    /// Remembers `index`, that of the entry of the wheel with this sha256.
    pub fn insert(&self, sha256: &str, index: EntryIndex) {
        lock(&self.0).insert(sha256.to_owned(), index);
    }

    fn take(&self, sha256: &str) -> Option<EntryIndex> {
        lock(&self.0).remove(sha256)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the garbage collector found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Collected {
    /// The unused entries, removed unless it was a dry run.
    pub removed: Vec<RemovedEntry>,
    /// Their files' sizes, summed.
    pub removed_bytes: u64,
    /// The entries in use, kept.
    pub kept: usize,
    /// Leftovers of interrupted runs under `tmp/` (removed unless it was a dry run).
    pub leftovers: usize,
}

/// One entry the garbage collector removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RemovedEntry {
    pub sha256: String,
    /// The wheel's file name, from its index (absent when the index cannot be read).
    pub wheel: Option<String>,
    pub bytes: u64,
}

impl Store {
    /// The store of the apps directory `apps_dir`: `APPS/.store`.
    pub fn of(apps_dir: &Path) -> Store {
        Store {
            dir: apps_dir.join(STORE_DIR),
        }
    }

    /// `APPS/.store`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `APPS/.store/wheels/SHA256`: the entry of the wheel whose file has this sha256.
    pub fn entry_dir(&self, sha256: &str) -> PathBuf {
        self.wheels_dir().join(sha256)
    }

    /// `APPS/.store/wheels`: the entries.
    pub fn wheels_dir(&self) -> PathBuf {
        self.dir.join("wheels")
    }

    /// Whether the entry of the wheel with this sha256 is published: read without the
    /// store's lock (a published entry is complete and never changes; gc renames it away
    /// whole), so a hint of what an install will find, taken before it holds the lock.
    pub fn has_published(&self, sha256: &str) -> bool {
        pyapp_fs::is_real_dir(&self.entry_dir(sha256)).unwrap_or(false)
    }

    /// The blocks digest ([`BLOCKS_DIGEST_FILE`]) the published entry of the wheel with
    /// this sha256 keeps, read as [`Store::has_published`] looks; `None` when there is
    /// none, or it cannot be read (an entry from before it was kept: the wheel's sha256 is
    /// checked instead).
    pub fn published_blocks_digest(&self, sha256: &str) -> Option<[u8; 32]> {
        let path = self.entry_dir(sha256).join(BLOCKS_DIGEST_FILE);
        let text = fs::read_to_string(path).ok()?;
        hex::FromHex::from_hex(text.trim_end()).ok()
    }

    /// The index of the published entry of the wheel with this sha256, read as
    /// [`Store::has_published`] looks (`None` when there is none, or it went meanwhile).
    pub fn published_index(&self, sha256: &str) -> Result<Option<EntryIndex>> {
        let dir = self.entry_dir(sha256);
        if !pyapp_fs::is_real_dir(&dir)? {
            return Ok(None);
        }
        match read_index(&dir) {
            Ok(index) => Ok(Some(index)),
            Err(_) if !pyapp_fs::exists(&dir)? => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `APPS/.store/interpreters`: the interpreters' remembered answers (root, 0700).
    pub fn interpreters_dir(&self) -> PathBuf {
        self.dir.join("interpreters")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// Opens the store for an install, creating it when missing, and holds its lock shared
    /// (waiting while a garbage collection runs). When no one else holds it, leftovers of
    /// interrupted runs under `tmp/` are removed first.
    pub fn open_for_install(&self) -> Result<StoreSession> {
        let new = !pyapp_fs::is_real_dir(&self.wheels_dir())?;
        for dir in [self.dir.clone(), self.wheels_dir()] {
            pyapp_fs::ensure_dir(&dir, 0o755)?;
        }
        pyapp_fs::ensure_dir(&self.tmp_dir(), 0o700)?;
        if new {
            // The entries published into wheels/ are durable only once wheels/ itself is.
            for dir in self.dir.ancestors().take(2) {
                pyapp_fs::sync_dir(dir)?;
            }
        }
        let lock = self.open_lock()?;
        match lock.try_lock() {
            Ok(()) => {
                self.remove_leftovers()?;
                // Exclusive to shared: others may take it shared from here on.
                lock.lock_shared()
            }
            Err(TryLockError::WouldBlock) => lock.lock_shared(),
            Err(TryLockError::Error(err)) => Err(err),
        }
        .map_err(FsError::io("lock", &self.lock_path()))?;
        Ok(StoreSession {
            store: self.clone(),
            _lock: lock,
            known: KnownIndexes::default(),
        })
    }

    fn open_lock(&self) -> Result<File> {
        open_lock_file(&self.lock_path())
    }

    /// Removes everything under `tmp/`; only with the lock held exclusively.
    fn remove_leftovers(&self) -> Result<usize> {
        let names = pyapp_fs::list_dir(&self.tmp_dir())?;
        for name in &names {
            pyapp_fs::remove_dir_all_if_exists(&self.tmp_dir().join(name))?;
        }
        Ok(names.len())
    }

    /// Deletes the entries no release uses (with `dry_run`, only finds them), and the
    /// leftovers under `tmp/`. With `wait`, waits for installs that hold the lock;
    /// otherwise returns `None` when one does. Nothing to do when there is no store.
    pub fn collect_garbage(&self, dry_run: bool, wait: bool) -> Result<Option<Collected>> {
        if !pyapp_fs::is_real_dir(&self.wheels_dir())? {
            return Ok(Some(Collected::default()));
        }
        let lock = self.open_lock()?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if wait => lock
                .lock()
                .map_err(FsError::io("lock", &self.lock_path()))?,
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(err)) => {
                return Err(FsError::io("lock", &self.lock_path())(err))
            }
        }
        let mut collected = Collected {
            leftovers: pyapp_fs::list_dir(&self.tmp_dir())?.len(),
            ..Collected::default()
        };
        if !dry_run {
            self.remove_leftovers()?;
        }
        for name in pyapp_fs::list_dir(&self.wheels_dir())? {
            if !is_sha256_hex(&name) {
                continue;
            }
            let dir = self.entry_dir(&name);
            let Some(bytes) = unused_entry_bytes(&dir)? else {
                collected.kept += 1;
                continue;
            };
            let wheel = read_index(&dir).ok().map(|index| index.wheel);
            if !dry_run {
                self.delete_entry(&name)?;
            }
            collected.removed_bytes += bytes;
            collected.removed.push(RemovedEntry {
                sha256: name,
                wheel,
                bytes,
            });
        }
        if !dry_run && !collected.removed.is_empty() {
            pyapp_fs::sync_dir(&self.wheels_dir())?;
        }
        Ok(Some(collected))
    }

    /// Renames the entry under `tmp/` (so that it is never seen half deleted), then
    /// deletes it.
    fn delete_entry(&self, sha256: &str) -> Result<()> {
        let doomed = self.tmp_dir().join(format!("gc-{sha256}"));
        pyapp_fs::rename(&self.entry_dir(sha256), &doomed)?;
        pyapp_fs::remove_dir_all_if_exists(&doomed.join("files"))?;
        fault::point("mid-gc");
        pyapp_fs::remove_dir_all_if_exists(&doomed)
    }
}

/// The summed size of the entry's files when none has a hard link outside it; `None` when
/// one does (the entry is in use). The entry's own `INSTALLER` and `RECORD-SHA256` are also
/// named in its `files/NAME.dist-info/`: such a file is in use only with a third name.
fn unused_entry_bytes(dir: &Path) -> Result<Option<u64>> {
    let mut bytes = 0;
    // The venv's own files the entry keeps, by inode: how many of their names were seen.
    let mut own: HashMap<(u64, u64), u64> = HashMap::new();
    for item in walkdir::WalkDir::new(dir).follow_links(false) {
        let item = item.map_err(FsError::io("list", dir))?;
        let meta = item
            .metadata()
            .map_err(FsError::io("inspect", item.path()))?;
        if !meta.is_file() {
            continue;
        }
        let name = item.file_name().to_string_lossy();
        let kept = name == "INSTALLER" || name.starts_with("RECORD");
        match meta.nlink() {
            1 => bytes += meta.len(),
            2 if kept => {
                let seen = own.entry((meta.dev(), meta.ino())).or_insert(0);
                *seen += 1;
                if *seen == 1 {
                    bytes += meta.len();
                }
            }
            _ => return Ok(None),
        }
    }
    if own.values().any(|seen| *seen < 2) {
        return Ok(None);
    }
    Ok(Some(bytes))
}

fn is_sha256_hex(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn read_index(dir: &Path) -> Result<EntryIndex> {
    let path = dir.join("index.json");
    let bytes = fs::read(&path).map_err(FsError::io("read", &path))?;
    let index: EntryIndex = state::parse(&path, &bytes)?;
    Ok(index)
}

impl StoreSession {
    /// The session, taking the indexes in `known` instead of reading them.
    pub fn knowing(self, known: KnownIndexes) -> StoreSession {
        StoreSession { known, ..self }
    }

    /// The complete entry of the wheel whose file has this sha256, if the store has it.
    pub fn find(&self, sha256: &str) -> Result<Option<StoreEntry>> {
        let dir = self.store.entry_dir(sha256);
        if !pyapp_fs::is_real_dir(&dir)? {
            return Ok(None);
        }
        let index = match self.known.take(sha256) {
            Some(index) => index,
            None => read_index(&dir)?,
        };
        Ok(Some(StoreEntry {
            home: dir.clone(),
            dir,
            index,
        }))
    }

    /// A new directory under `tmp/` to unpack the wheel with this sha256 into,
    /// `SHA256-PID-N`: N counts the entries started by this process, so that two installs
    /// in one process (`serve`) unpacking the same wheel never share one. It and its
    /// `files/` are listed in `to_sync`, where what is written into them is listed too.
    pub fn start_entry(&self, sha256: &str, to_sync: &ToSync) -> Result<PendingEntry> {
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .store
            .tmp_dir()
            .join(format!("{sha256}-{}-{n}", std::process::id()));
        pyapp_fs::remove_dir_all_if_exists(&dir)?;
        pyapp_fs::ensure_dir(&dir, 0o755)?;
        pyapp_fs::ensure_dir(&dir.join("files"), 0o755)?;
        to_sync.dirs_from(&dir, &dir.join("files"));
        Ok(PendingEntry {
            dir,
            home: self.store.entry_dir(sha256),
        })
    }

    /// Makes the unpacked entries durable: `to_sync`, every file and directory written
    /// into them (a debug build checks that it is all of them). It may run while their
    /// files are being linked.
    pub fn sync(&self, pending: &[PendingEntry], to_sync: &ToSync) -> Result<()> {
        for entry in pending {
            to_sync.debug_assert_covers(&entry.dir);
        }
        to_sync.sync()
    }

    /// Renames finished entries, made durable by [`StoreSession::sync`], into place. When
    /// another install published the same wheel meanwhile, its entry stays and this one is
    /// dropped (what was hard-linked from it keeps its files); returns where those entries
    /// are (`wheels/SHA256`), so that what was meant to keep them in use is linked from
    /// them instead.
    pub fn publish(&self, pending: Vec<PendingEntry>) -> Result<Vec<PathBuf>> {
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let mut lost = Vec::new();
        for entry in &pending {
            match fs::rename(&entry.dir, &entry.home) {
                Ok(()) => {}
                Err(err)
                    if matches!(
                        err.raw_os_error(),
                        Some(nix::libc::ENOTEMPTY | nix::libc::EEXIST)
                    ) =>
                {
                    lost.push(entry.home.clone());
                }
                Err(err) => {
                    return Err(FsError::Rename {
                        from: entry.dir.clone(),
                        to: entry.home.clone(),
                        source: err,
                    })
                }
            }
        }
        pyapp_fs::sync_dir(&self.store.wheels_dir())?;
        fault::point("store-published");
        Ok(lost)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use pyapp_bundle::names::AppName;

    #[test]
    fn the_store_can_never_be_an_app() {
        assert!(AppName::new(STORE_DIR).is_err());
    }

    fn store_in(dir: &Path) -> Store {
        fs::create_dir(dir.join("applications")).unwrap();
        Store::of(&dir.join("applications"))
    }

    fn publish_one(session: &StoreSession, sha256: &str, contents: &[u8]) -> StoreEntry {
        let to_sync = ToSync::new();
        let pending = session.start_entry(sha256, &to_sync).unwrap();
        let file = pending.files_dir().join("a.py");
        fs::write(&file, contents).unwrap();
        to_sync.file_at(&file);
        let digest = sha256.as_bytes()[..32].try_into().unwrap();
        pending
            .finish(index(&sha256[..4]), Some(digest), &to_sync)
            .unwrap();
        session
            .sync(std::slice::from_ref(&pending), &to_sync)
            .unwrap();
        session.publish(vec![pending]).unwrap();
        session.find(sha256).unwrap().unwrap()
    }

    fn index(name: &str) -> EntryIndex {
        EntryIndex {
            index_format: INDEX_FORMAT,
            wheel: format!("w{name}-1.0-py3-none-any.whl"),
            dist_info: "w-1.0.dist-info".into(),
            files: Vec::new(),
        }
    }

    #[test]
    fn entries_in_use_survive_collection_and_unused_ones_go() {
        let root = tempfile::tempdir().unwrap();
        let store = store_in(root.path());
        let (used, unused) = ("a".repeat(64), "b".repeat(64));
        let venv = root.path().join("venv");
        fs::create_dir(&venv).unwrap();
        {
            let session = store.open_for_install().unwrap();
            let kept = publish_one(&session, &used, b"print(1)\n");
            publish_one(&session, &unused, b"print(2)\n");
            fs::hard_link(kept.file("a.py"), venv.join("a.py")).unwrap();
            // The lock is held shared: collection waits for the install, or is skipped.
            assert_eq!(store.collect_garbage(false, false).unwrap(), None);
        }
        let dry = store.collect_garbage(true, false).unwrap().unwrap();
        assert_eq!(dry.removed.len(), 1);
        assert_eq!(dry.removed[0].sha256, unused);
        let size = |name: &str| {
            fs::metadata(store.entry_dir(&unused).join(name))
                .unwrap()
                .len()
        };
        assert_eq!(
            dry.removed_bytes,
            9 + size("index.json") + size(BLOCKS_DIGEST_FILE)
        );
        assert_eq!(store.published_blocks_digest(&used), Some([b'a'; 32]));
        assert_eq!(store.published_blocks_digest(&"c".repeat(64)), None);
        assert!(
            store.entry_dir(&unused).is_dir(),
            "a dry run deletes nothing"
        );

        let done = store.collect_garbage(false, false).unwrap().unwrap();
        assert_eq!(done.removed, dry.removed);
        assert_eq!(done.kept, 1);
        assert!(!store.entry_dir(&unused).exists());
        assert!(store.entry_dir(&used).is_dir());
        // Once the release lets go of its link, the entry is unused too.
        fs::remove_file(venv.join("a.py")).unwrap();
        let last = store.collect_garbage(false, true).unwrap().unwrap();
        assert_eq!(last.removed.len(), 1);
        assert_eq!(
            pyapp_fs::list_dir(&store.wheels_dir()).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_unfinished_entry_leaves_nothing_and_leftovers_are_collected() {
        let root = tempfile::tempdir().unwrap();
        let store = store_in(root.path());
        let session = store.open_for_install().unwrap();
        let pending = session
            .start_entry(&"c".repeat(64), &ToSync::new())
            .unwrap();
        fs::write(pending.files_dir().join("x"), b"x").unwrap();
        drop(pending);
        assert_eq!(
            pyapp_fs::list_dir(&store.tmp_dir()).unwrap(),
            Vec::<String>::new()
        );
        // What a killed run leaves under tmp/ is removed by the next exclusive holder.
        fs::create_dir(store.tmp_dir().join("d-1")).unwrap();
        drop(session);
        let collected = store.collect_garbage(false, false).unwrap().unwrap();
        assert_eq!(collected.leftovers, 1);
        assert_eq!(
            pyapp_fs::list_dir(&store.tmp_dir()).unwrap(),
            Vec::<String>::new()
        );
    }

    /// Two installs in one process (the `serve` daemon) unpacking the same wheel at once
    /// each get their own directory: neither removes nor writes into the other's.
    #[test]
    fn entries_started_twice_in_one_process_do_not_collide() {
        let root = tempfile::tempdir().unwrap();
        let store = store_in(root.path());
        let (one, two) = (
            store.open_for_install().unwrap(),
            store.open_for_install().unwrap(),
        );
        let sha = "f".repeat(64);
        let to_sync = ToSync::new();
        let first = one.start_entry(&sha, &to_sync).unwrap();
        fs::write(first.files_dir().join("a.py"), b"1").unwrap();
        let second = two.start_entry(&sha, &to_sync).unwrap();
        assert_ne!(first.files_dir(), second.files_dir());
        assert_eq!(
            fs::read(first.files_dir().join("a.py")).unwrap(),
            b"1",
            "starting the second left the first alone"
        );
        drop(second);
        assert!(first.files_dir().join("a.py").exists());
        first.finish(index("f"), None, &to_sync).unwrap();
        one.publish(vec![first]).unwrap();
        assert!(pyapp_fs::is_real_dir(&store.entry_dir(&sha)).unwrap());
    }

    #[test]
    fn a_wheel_published_twice_is_kept_once() {
        let root = tempfile::tempdir().unwrap();
        let store = store_in(root.path());
        let session = store.open_for_install().unwrap();
        let sha = "e".repeat(64);
        let to_sync = ToSync::new();
        let first = session.start_entry(&sha, &to_sync).unwrap();
        let second = PendingEntry {
            dir: store.tmp_dir().join("other"),
            home: store.entry_dir(&sha),
        };
        fs::create_dir_all(second.files_dir()).unwrap();
        fs::write(first.files_dir().join("first"), b"").unwrap();
        for pending in [&first, &second] {
            pending.finish(index("w"), None, &to_sync).unwrap();
        }
        let lost = session.publish(vec![first, second]).unwrap();
        assert_eq!(lost, [store.entry_dir(&sha)], "the second lost");
        assert!(
            store.entry_dir(&sha).join("files/first").exists(),
            "the first one stays"
        );
        assert_eq!(
            pyapp_fs::list_dir(&store.tmp_dir()).unwrap(),
            Vec::<String>::new()
        );
    }
}
