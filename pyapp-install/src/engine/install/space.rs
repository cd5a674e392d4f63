//! Whether the release fits, decided before anything is written: what every entry will
//! expand to (the bundle's own from its verified manifest, each wheel's files from its
//! central directory; extraction never writes more than either declares; a wheel the store
//! holds from the store's index, which lists exactly that wheel's files, so that it is not
//! read before its deferred verification; the indexes read are kept for the install to
//! link from), each rounded up to the filesystem's block (an
//! empty file counts one), against the free space of the apps filesystem and the
//! `--max-installed-size` limit.

use anyhow::Result;
use pyapp_bundle::layout::DEPS_PREFIX;
use pyapp_bundle::reader::{Bundle, BundleEntry};
use pyapp_cli::Refusal;
use pyapp_venv::store::{KnownIndexes, Store};
use pyapp_venv::wheel_install::declared_sizes;
use rayon::prelude::*;

use super::stage::wheel_error;
use crate::app::tree::AppsDir;
use crate::engine::gc::human_bytes;
use crate::system::disk;

/// The default of `--max-installed-size`: 4 GiB.
pub const DEFAULT_MAX_INSTALLED_SIZE: u64 = 4 << 30;

/// Refuses `bundle` when what it expands to does not fit under `apps` or exceeds `limit`;
/// returns the store's indexes it read.
pub fn check(bundle: &Bundle, apps: &AppsDir, limit: u64) -> Result<KnownIndexes> {
    let store = Store::of(apps.path());
    let room = disk::room(apps.path())?;
    // An empty file takes an inode and a directory entry: a block each, so that a wheel of
    // a million empty files is not free.
    let on_disk = |size: u64| size.div_ceil(room.block).max(1).saturating_mul(room.block);
    let on_disk_sum = |sizes: &mut dyn Iterator<Item = u64>| {
        sizes.fold(0, |sum: u64, size| sum.saturating_add(on_disk(size)))
    };
    let known = KnownIndexes::default();
    // Each entry's part, the wheels' in parallel (an index of thousands of files to parse,
    // a central directory to read).
    let expand = |entry: &BundleEntry| -> Result<u64> {
        let Some(wheel) = entry.name.strip_prefix(DEPS_PREFIX) else {
            return Ok(on_disk(entry.size));
        };
        if bundle.is_deferred(&entry.name) {
            let sha256 = hex::encode(entry.sha256);
            if let Some(index) = store.published_index(&sha256)? {
                let needed = on_disk_sum(&mut index.installed_sizes());
                known.insert(&sha256, index);
                return Ok(needed);
            }
        }
        let declared =
            declared_sizes(wheel, bundle.stored_entry(&entry.name)?).map_err(wheel_error)?;
        Ok(on_disk_sum(&mut declared.into_iter()))
    };
    let needed = bundle
        .entries()
        .par_iter()
        .map(expand)
        .try_reduce(|| 0, |a, b| Ok(a.saturating_add(b)))?;
    if needed <= limit && needed <= room.free {
        return Ok(known);
    }
    let hint = if needed > limit {
        "a bundle from a source you trust may be given a higher --max-installed-size"
    } else {
        "free space on that filesystem (pyapp-install gc removes unused store entries)"
    };
    Err(Refusal::new(format!(
        "refusing the bundle: installing it needs {} ({needed} bytes), `{}` has {} free, the limit (--max-installed-size) is {}",
        human_bytes(needed),
        room.dir.display(),
        human_bytes(room.free),
        human_bytes(limit)
    ))
    .with_hint(hint)
    .into())
}
