//! Choosing the one wheel each pin puts in the bundle: from the `--wheels` directories
//! first, then from the index for what is missing, checked against the pin's version, its
//! `--hash` values and the target interpreter's tags.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use pyapp_bundle::tags::Tag;
use pyapp_bundle::wheel_name::WheelName;
use sha2::{Digest, Sha256};

use crate::pins::Pin;
use crate::wheel_contents::WheelContents;
use crate::Refusal;

/// Where a chosen wheel came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    WheelDir,
    Index,
    Built,
}

/// The wheel chosen for a pin (or the app's own wheel).
#[derive(Debug, Clone)]
pub struct ChosenWheel {
    pub path: PathBuf,
    pub name: WheelName,
    pub sha256: String,
    pub origin: Origin,
    pub contents: WheelContents,
}

impl ChosenWheel {
    /// Describe a wheel file on disk.
    pub fn from_path(path: &Path, origin: Origin) -> anyhow::Result<ChosenWheel> {
        let file_name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| anyhow::anyhow!("{}: not a wheel file name", path.display()))?;
        let name = WheelName::parse(file_name).map_err(|err| Refusal::new(err.to_string()))?;
        let contents = WheelContents::read(path, name.file_name())?;
        Ok(ChosenWheel {
            path: path.to_path_buf(),
            name,
            sha256: sha256_file(path)?,
            origin,
            contents,
        })
    }
}

/// The outcome of looking for every pin's wheel.
pub struct Selection {
    pub chosen: Vec<ChosenWheel>,
    /// Pins with no wheel of their name and version at all.
    pub missing: Vec<Pin>,
}

/// Look for every pin's wheel in `dirs`.
pub fn select(
    pins: &[Pin],
    dirs: &[PathBuf],
    supported: &[Tag],
    origin: Origin,
) -> anyhow::Result<Selection> {
    let available = list_wheels(dirs)?;
    let mut chosen = Vec::new();
    let mut missing = Vec::new();
    for pin in pins {
        let candidates: Vec<&(PathBuf, WheelName)> = available
            .get(&pin.name)
            .into_iter()
            .flatten()
            .filter(|(_, name)| *name.version() == pin.version)
            .collect();
        if candidates.is_empty() {
            missing.push(pin.clone());
            continue;
        }
        let mut fitting: Vec<(usize, &(PathBuf, WheelName))> = candidates
            .iter()
            .filter_map(|candidate| {
                candidate
                    .1
                    .compatibility(supported)
                    .map(|rank| (rank, *candidate))
            })
            .collect();
        if fitting.is_empty() {
            let found: Vec<&str> = candidates
                .iter()
                .map(|(_, name)| name.file_name())
                .collect();
            return Err(Refusal::new(format!(
                "{}=={}: no wheel fits the target Python {}: found {}",
                pin.name,
                pin.version,
                describe_target(supported),
                found.join(", ")
            ))
            .into());
        }
        fitting.sort_by_key(|(rank, (_, name))| (*rank, name.file_name().to_string()));
        let mut picked = None;
        for (_, (path, _)) in &fitting {
            let wheel = ChosenWheel::from_path(path, origin)?;
            if pin.hashes.is_empty() || pin.hashes.contains(&wheel.sha256) {
                picked = Some(wheel);
                break;
            }
        }
        let wheel = picked.ok_or_else(|| {
            Refusal::new(format!(
                "{}=={}: no wheel matches the --hash values at {} (tried {})",
                pin.name,
                pin.version,
                pin.place(),
                fitting
                    .iter()
                    .map(|(_, (_, name))| name.file_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        chosen.push(wheel);
    }
    Ok(Selection { chosen, missing })
}

/// A short description of the target for error messages: its most specific tag.
fn describe_target(supported: &[Tag]) -> String {
    supported
        .first()
        .map_or_else(|| "(no tags)".to_string(), Tag::to_string)
}

/// Every parseable `*.whl` in `dirs`, by normalised project name.
pub(crate) fn list_wheels(
    dirs: &[PathBuf],
) -> anyhow::Result<BTreeMap<String, Vec<(PathBuf, WheelName)>>> {
    let mut by_name: BTreeMap<String, Vec<(PathBuf, WheelName)>> = BTreeMap::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|err| {
            Refusal::new(format!(
                "--wheels {}: cannot read directory: {err}",
                dir.display()
            ))
        })?;
        for entry in entries {
            let path = entry?.path();
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !file_name.ends_with(".whl") {
                continue;
            }
            if let Ok(name) = WheelName::parse(file_name) {
                by_name
                    .entry(name.name().to_string())
                    .or_default()
                    .push((path, name));
            }
        }
    }
    Ok(by_name)
}

/// The sha256 of a file, lowercase hex, read in a stream.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path)
        .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}
