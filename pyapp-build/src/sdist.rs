//! Pins that have only a source distribution: the sdist is fetched with `pip download
//! --no-binary=:all:` into the wheel cache's `sdists/`, checked against the pin's `--hash`
//! values, unpacked, and built into a wheel by its own build backend ([`crate::app_wheel`]),
//! here in CI where the compilers are. The wheel is kept under the cache's
//! `built/SDIST-SHA256/`, so the next build of the same sdist takes it from there.

use std::path::{Path, PathBuf};

use pyapp_bundle::wheel_name::normalize_name;

use crate::app_wheel::{self, BuildInputs};
use crate::index::{self, Fetch, PipTarget};
use crate::pins::Pin;
use crate::project::Project;
use crate::wheels::sha256_file;
use crate::Refusal;

/// The suffixes of the sdists pyapp-build unpacks.
const SDIST_SUFFIXES: [&str; 2] = [".tar.gz", ".zip"];

/// The wheel built from `pin`'s sdist, from the cache or built now (fetching the sdist
/// unless `--no-index`); `work` is an empty scratch directory.
pub fn wheel_for(pin: &Pin, inputs: &BuildInputs, work: &Path) -> anyhow::Result<PathBuf> {
    let sources = inputs.wheels;
    let sdists = sources.cache.join("sdists");
    let sdist = match find_sdist(pin, &sdists)? {
        Some(sdist) => sdist,
        None if sources.no_index => {
            return Err(Refusal::new(format!(
                "{}: {}=={} has no wheel in the --wheels directories and no sdist in {} (and --no-index forbids downloading)",
                pin.place(),
                pin.name,
                pin.version,
                sdists.display()
            ))
            .into())
        }
        None => {
            std::fs::create_dir_all(&sdists)
                .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", sdists.display()))?;
            index::download(
                &sources.python,
                &[format!("{}=={}", pin.name, pin.version)],
                &sdists,
                &sources.index,
                &PipTarget::default(),
                Fetch::Sdists,
                true,
            )
            .map_err(|_| {
                Refusal::new(format!(
                    "{}: {}=={}: pip download found neither a wheel nor an sdist",
                    pin.place(),
                    pin.name,
                    pin.version
                ))
            })?;
            find_sdist(pin, &sdists)?.ok_or_else(|| {
                Refusal::new(format!(
                    "{}: {}=={}: pip download brought no sdist of that name and version",
                    pin.place(),
                    pin.name,
                    pin.version
                ))
            })?
        }
    };
    let digest = sha256_file(&sdist)?;
    let sdist_name = sdist
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !pin.hashes.is_empty() && !pin.hashes.contains(&digest) {
        return Err(Refusal::new(format!(
            "{}: {}=={}: its sdist {sdist_name} matches none of the --hash values",
            pin.place(),
            pin.name,
            pin.version
        ))
        .into());
    }
    let built_dir = sources.cache.join("built").join(&digest);
    if let Some(wheel) = first_wheel(&built_dir)? {
        return Ok(wheel);
    }

    let unpacked = work.join("sdist");
    unpack(&sdist, &unpacked)
        .map_err(|err| Refusal::new(format!("{sdist_name}: cannot unpack: {err}")))?;
    let top = single_dir(&unpacked)
        .ok_or_else(|| Refusal::new(format!("{sdist_name}: does not hold one top directory")))?;
    let project = Project::load(&top)?;
    let build_work = work.join("build");
    std::fs::create_dir(&build_work)?;
    let built = app_wheel::build_tree(
        Path::new(&sdist_name),
        &top,
        &project.build_system,
        inputs,
        &build_work,
    )?;
    std::fs::create_dir_all(&built_dir)
        .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", built_dir.display()))?;
    let file_name = built
        .path
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("a built wheel without a name"))?;
    // Into the cache under a temporary name, then renamed: a cached wheel is always whole.
    let partial = tempfile::NamedTempFile::new_in(&built_dir)?;
    std::fs::copy(&built.path, partial.path())?;
    let cached = built_dir.join(file_name);
    partial.persist(&cached)?;
    Ok(cached)
}

/// Whether `pin`'s sdist is in the wheel cache `cache` (so its wheel is built or cached
/// without the index).
pub fn is_cached(pin: &Pin, cache: &Path) -> bool {
    find_sdist(pin, &cache.join("sdists")).is_ok_and(|found| found.is_some())
}

/// The sdist of `pin` in `dir`, if one is there: `NAME-VERSION.tar.gz` or `.zip`, the name
/// compared normalised.
fn find_sdist(pin: &Pin, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    for entry in entries {
        let path = entry?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = SDIST_SUFFIXES
            .iter()
            .find_map(|suffix| file_name.strip_suffix(suffix))
        else {
            continue;
        };
        let Some((name, version)) = stem.rsplit_once('-') else {
            continue;
        };
        if normalize_name(name) == pin.name
            && version.parse::<pep440_rs::Version>().ok().as_ref() == Some(&pin.version)
        {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

fn first_wheel(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "whl") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Unpack a `.tar.gz` or `.zip` sdist into `dest`; neither unpacker writes outside it.
fn unpack(sdist: &Path, dest: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest)?;
    let file = std::fs::File::open(sdist)?;
    if sdist.extension().is_some_and(|ext| ext == "zip") {
        zip::ZipArchive::new(file)?.extract(dest)?;
    } else {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        archive.set_preserve_permissions(false);
        archive.unpack(dest)?;
    }
    Ok(())
}

/// The one directory in `dir`, as sdists hold `NAME-VERSION/`.
fn single_dir(dir: &Path) -> Option<PathBuf> {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    match &entries[..] {
        [only] if only.is_dir() => Some(only.clone()),
        _ => None,
    }
}
