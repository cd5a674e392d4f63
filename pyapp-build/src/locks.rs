//! Lock files read as the app's pins, so nobody has to export a requirements file:
//! `uv.lock`, `poetry.lock` and PEP 751's `pylock.toml` (spec/FORMAT.md 3.4). A lock file
//! holds every platform's resolution; the pins are what the target installs. For uv.lock and
//! poetry.lock: starting from the `Requires-Dist` of the app's own wheel whose markers hold on
//! the target, each dependency is followed through the lock's dependency lists (markers
//! evaluated for the target, extras followed), and every locked entry reached is pinned with
//! the sha256 digests the lock lists for its files. pylock.toml says it itself: every package
//! whose `marker` holds on the target is installed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep440_rs::Version;
use pep508_rs::{ExtraName, MarkerEnvironment, Requirement, VersionOrUrl};
use pyapp_bundle::wheel_name::normalize_name;
use serde::Deserialize;

use crate::pins::Pin;
use crate::Refusal;

/// The lock files pyapp-build reads, in the order it looks for them.
pub const LOCK_FILES: [&str; 3] = ["uv.lock", "poetry.lock", "pylock.toml"];

/// One locked distribution, whichever file it comes from.
#[derive(Debug)]
struct Locked {
    name: String,
    version: Version,
    hashes: Vec<String>,
    line: usize,
    /// Markers of which one must hold for this entry to be the one of its name (uv's
    /// `resolution-markers`, poetry's `markers`); empty: it always is.
    markers: Vec<String>,
    dependencies: Vec<Edge>,
    /// Dependencies only an extra brings: extra -> edges.
    optional: BTreeMap<String, Vec<Edge>>,
    /// Why it cannot be bundled from wheels (a local or VCS source), if so.
    unsupported: Option<String>,
}

/// A dependency of a locked entry.
#[derive(Debug, Clone)]
struct Edge {
    name: String,
    /// uv names the version when several of the name are locked.
    version: Option<Version>,
    marker: Option<String>,
    extras: Vec<String>,
}

/// The pins `file` (one of [`LOCK_FILES`] in `dir`) gives the app whose wheel requires
/// `roots`, on the target `env`.
pub fn pins(
    dir: &Path,
    file: &str,
    roots: &[Requirement],
    env: &MarkerEnvironment,
) -> anyhow::Result<Vec<Pin>> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|err| Refusal::new(format!("{file}: cannot read: {err}")))?;
    let refuse = |what: String| Refusal::new(format!("{file}: {what}"));
    match file {
        "uv.lock" => walk(file, &read_uv(&text).map_err(refuse)?, roots, env).map_err(refuse),
        "poetry.lock" => {
            walk(file, &read_poetry(&text).map_err(refuse)?, roots, env).map_err(refuse)
        }
        _ => pylock(&text, env).map_err(refuse),
    }
    .map_err(Into::into)
}

/// Follow the dependencies from `roots` through `locked`.
fn walk(
    file: &str,
    locked: &[Locked],
    roots: &[Requirement],
    env: &MarkerEnvironment,
) -> Result<Vec<Pin>, String> {
    let mut queue: VecDeque<(Edge, Option<&Requirement>, String)> = VecDeque::new();
    for root in roots {
        if !root.evaluate_markers(env, &[]) {
            continue;
        }
        let edge = Edge {
            name: normalize_name(root.name.as_ref()),
            version: None,
            marker: None,
            extras: root.extras.iter().map(ToString::to_string).collect(),
        };
        queue.push_back((edge, Some(root), "the app".to_string()));
    }
    let mut pinned: BTreeMap<usize, Pin> = BTreeMap::new();
    let mut visited: BTreeSet<(usize, Vec<String>)> = BTreeSet::new();
    while let Some((edge, requirement, wanted_by)) = queue.pop_front() {
        let index = choose(locked, &edge, requirement, env, &wanted_by)?;
        let entry = &locked[index];
        if let Some(why) = &entry.unsupported {
            return Err(format!(
                "line {}: {} {}: {why}",
                entry.line, entry.name, entry.version
            ));
        }
        pinned.entry(index).or_insert_with(|| Pin {
            name: entry.name.clone(),
            version: entry.version.clone(),
            requirement: Requirement::from_str(&format!("{}=={}", entry.name, entry.version))
                .unwrap_or_else(|_| unreachable!("a normalised name and a parsed version")),
            hashes: entry.hashes.clone(),
            file: PathBuf::from(file),
            line: entry.line,
        });
        let mut extras = edge.extras.clone();
        extras.sort();
        extras.dedup();
        if !visited.insert((index, extras.clone())) {
            continue;
        }
        let extra_names: Vec<ExtraName> = extras
            .iter()
            .filter_map(|extra| ExtraName::from_str(extra).ok())
            .collect();
        let optional = extras
            .iter()
            .flat_map(|extra| entry.optional.get(extra).into_iter().flatten());
        for dependency in entry.dependencies.iter().chain(optional) {
            if let Some(marker) = &dependency.marker {
                if !holds(marker, env, &extra_names)? {
                    continue;
                }
            }
            let by = format!("{} {}", entry.name, entry.version);
            queue.push_back((dependency.clone(), None, by));
        }
    }
    Ok(pinned.into_values().collect())
}

/// The locked entry `edge` leads to on the target.
fn choose(
    locked: &[Locked],
    edge: &Edge,
    requirement: Option<&Requirement>,
    env: &MarkerEnvironment,
    wanted_by: &str,
) -> Result<usize, String> {
    let mut candidates = Vec::new();
    for (index, entry) in locked.iter().enumerate() {
        if entry.name != edge.name || edge.version.as_ref().is_some_and(|v| *v != entry.version) {
            continue;
        }
        if let Some(Some(VersionOrUrl::VersionSpecifier(specifiers))) =
            requirement.map(|r| &r.version_or_url)
        {
            if !specifiers.contains(&entry.version) {
                continue;
            }
        }
        let mut fits = entry.markers.is_empty();
        for marker in &entry.markers {
            fits = fits || holds(marker, env, &[])?;
        }
        if fits {
            candidates.push(index);
        }
    }
    match candidates[..] {
        [index] => Ok(index),
        [] => Err(match requirement {
            Some(requirement) => format!(
                "the app requires `{requirement}`, which is not locked for the target (run the locking tool again)"
            ),
            None => format!("{wanted_by} requires {}, which is not locked", edge.name),
        }),
        _ => Err(format!(
            "{wanted_by} requires {}, of which several versions are locked for the target: {}",
            edge.name,
            candidates
                .iter()
                .map(|&i| locked[i].version.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether the PEP 508 `marker` holds on the target with `extras`.
fn holds(marker: &str, env: &MarkerEnvironment, extras: &[ExtraName]) -> Result<bool, String> {
    let requirement: Requirement =
        Requirement::from_str(&format!("marker ; {marker}")).map_err(|err| {
            format!(
                "`{marker}` is not a PEP 508 marker: {}",
                err.to_string().lines().next().unwrap_or_default()
            )
        })?;
    Ok(requirement.evaluate_markers(env, extras))
}

/// The line of the entry `name = "NAME"` followed by `version = "VERSION"` in a lock file.
fn line_of(text: &str, name: &str, version: &str) -> usize {
    let needle = format!("name = \"{name}\"\nversion = \"{version}\"");
    text.find(&needle)
        .map_or(1, |at| text[..at].matches('\n').count() + 1)
}

fn parse_version(name: &str, version: &str) -> Result<Version, String> {
    Version::from_str(version)
        .map_err(|err| format!("{name}: version `{version}` is not a PEP 440 version: {err}"))
}

/// `sha256:HEX` -> `HEX`; other algorithms are left out.
fn sha256(hash: &str) -> Option<String> {
    hash.strip_prefix("sha256:").map(str::to_ascii_lowercase)
}

#[derive(Deserialize)]
struct UvLock {
    #[serde(default)]
    package: Vec<UvPackage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct UvPackage {
    name: String,
    version: Option<String>,
    source: Option<toml::Table>,
    #[serde(default)]
    resolution_markers: Vec<String>,
    #[serde(default)]
    dependencies: Vec<UvDependency>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, Vec<UvDependency>>,
    sdist: Option<UvFile>,
    #[serde(default)]
    wheels: Vec<UvFile>,
}

#[derive(Deserialize)]
struct UvDependency {
    name: String,
    version: Option<String>,
    marker: Option<String>,
    #[serde(default)]
    extra: Vec<String>,
}

#[derive(Deserialize)]
struct UvFile {
    hash: Option<String>,
}

fn read_uv(text: &str) -> Result<Vec<Locked>, String> {
    let lock: UvLock = toml::from_str(text).map_err(|err| err.message().trim_end().to_string())?;
    let edge = |dependency: UvDependency| -> Result<Edge, String> {
        Ok(Edge {
            name: normalize_name(&dependency.name),
            version: dependency
                .version
                .as_deref()
                .map(|v| parse_version(&dependency.name, v))
                .transpose()?,
            marker: dependency.marker,
            extras: dependency.extra,
        })
    };
    lock.package
        .into_iter()
        .map(|package| {
            let version_text = package.version.clone().unwrap_or_default();
            let unsupported = package.source.as_ref().and_then(|source| {
                ["editable", "directory", "virtual", "path", "git", "url"]
                    .iter()
                    .find(|kind| source.contains_key(**kind))
                    .map(|kind| format!("its source is `{kind}`, not a package index: pin it from an index, or build its wheel and give it with --wheels"))
            });
            Ok(Locked {
                name: normalize_name(&package.name),
                version: parse_version(&package.name, &version_text)?,
                hashes: package
                    .sdist
                    .iter()
                    .chain(&package.wheels)
                    .filter_map(|file| file.hash.as_deref().and_then(sha256))
                    .collect(),
                line: line_of(text, &package.name, &version_text),
                markers: package.resolution_markers,
                dependencies: package
                    .dependencies
                    .into_iter()
                    .map(edge)
                    .collect::<Result<_, _>>()?,
                optional: package
                    .optional_dependencies
                    .into_iter()
                    .map(|(extra, edges)| {
                        Ok((extra, edges.into_iter().map(edge).collect::<Result<_, _>>()?))
                    })
                    .collect::<Result<_, String>>()?,
                unsupported,
            })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PyLock {
    lock_version: Option<String>,
    #[serde(default)]
    packages: Vec<PyLockPackage>,
}

#[derive(Deserialize)]
struct PyLockPackage {
    name: String,
    version: Option<String>,
    marker: Option<String>,
    sdist: Option<PyLockFile>,
    #[serde(default)]
    wheels: Vec<PyLockFile>,
    directory: Option<toml::Table>,
    vcs: Option<toml::Table>,
    archive: Option<toml::Table>,
}

#[derive(Deserialize)]
struct PyLockFile {
    #[serde(default)]
    hashes: BTreeMap<String, String>,
}

/// The packages of a PEP 751 lock whose marker holds on the target. A `directory` package is
/// a project of the lock's own tree (the app itself, as `uv export` writes it) and is left
/// out; `vcs` and `archive` ones cannot be pinned to an index's wheel.
fn pylock(text: &str, env: &MarkerEnvironment) -> Result<Vec<Pin>, String> {
    let lock: PyLock = toml::from_str(text).map_err(|err| err.message().trim_end().to_string())?;
    match lock.lock_version.as_deref() {
        Some(version) if version.split('.').next() == Some("1") => {}
        other => {
            return Err(format!(
                "lock-version {} is not supported (pyapp-build reads 1.x)",
                other.unwrap_or("(missing)")
            ))
        }
    }
    let mut pins: Vec<Pin> = Vec::new();
    for package in lock.packages {
        if let Some(marker) = &package.marker {
            if !holds(marker, env, &[])? {
                continue;
            }
        }
        if package.directory.is_some() {
            continue;
        }
        let name = normalize_name(&package.name);
        let Some(version_text) = package.version else {
            return Err(format!(
                "{name}: no version (pyapp-build pins index packages only)"
            ));
        };
        let line = line_of(text, &package.name, &version_text);
        if package.vcs.is_some() || package.archive.is_some() {
            return Err(format!(
                "line {line}: {name} {version_text}: a `vcs` or `archive` package, not from a package index: build its wheel and give it with --wheels"
            ));
        }
        if let Some(earlier) = pins.iter().find(|pin| pin.name == name) {
            return Err(format!(
                "line {line}: {name} is locked twice for the target (also at line {})",
                earlier.line
            ));
        }
        let version = parse_version(&name, &version_text)?;
        pins.push(Pin {
            requirement: Requirement::from_str(&format!("{name}=={version}"))
                .unwrap_or_else(|_| unreachable!("a normalised name and a parsed version")),
            name,
            version,
            hashes: package
                .sdist
                .iter()
                .chain(&package.wheels)
                .filter_map(|file| file.hashes.get("sha256").map(|h| h.to_ascii_lowercase()))
                .collect(),
            file: PathBuf::from("pylock.toml"),
            line,
        });
    }
    Ok(pins)
}

#[derive(Deserialize)]
struct PoetryLock {
    #[serde(default)]
    package: Vec<PoetryPackage>,
}

#[derive(Deserialize)]
struct PoetryPackage {
    name: String,
    version: String,
    markers: Option<toml::Value>,
    #[serde(default)]
    files: Vec<PoetryFile>,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
    #[serde(default)]
    extras: BTreeMap<String, Vec<String>>,
    source: Option<toml::Table>,
}

#[derive(Deserialize)]
struct PoetryFile {
    hash: Option<String>,
}

fn read_poetry(text: &str) -> Result<Vec<Locked>, String> {
    let lock: PoetryLock =
        toml::from_str(text).map_err(|err| err.message().trim_end().to_string())?;
    lock.package
        .into_iter()
        .map(|package| {
            let mut dependencies = Vec::new();
            let mut optional_names = BTreeSet::new();
            for (name, value) in &package.dependencies {
                // A string constraint, a table, or a list of tables for different markers.
                let tables: Vec<Option<&toml::Table>> = match value {
                    toml::Value::Array(items) => items.iter().map(toml::Value::as_table).collect(),
                    toml::Value::Table(table) => vec![Some(table)],
                    _ => vec![None],
                };
                for table in tables {
                    let get = |key: &str| table.and_then(|t| t.get(key));
                    let edge = Edge {
                        name: normalize_name(name),
                        version: None,
                        marker: get("markers").and_then(toml::Value::as_str).map(String::from),
                        extras: get("extras")
                            .and_then(toml::Value::as_array)
                            .map(|extras| {
                                extras
                                    .iter()
                                    .filter_map(|e| e.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    };
                    if get("optional").and_then(toml::Value::as_bool) == Some(true) {
                        optional_names.insert(edge.name.clone());
                    }
                    dependencies.push(edge);
                }
            }
            let (optional_edges, required): (Vec<Edge>, Vec<Edge>) = dependencies
                .into_iter()
                .partition(|edge| optional_names.contains(&edge.name));
            let optional = package
                .extras
                .iter()
                .map(|(extra, requirements)| {
                    let names: BTreeSet<String> = requirements
                        .iter()
                        .map(|r| {
                            let end = r.find([' ', '(', '[', ';', '<', '>', '=', '!', '~']).unwrap_or(r.len());
                            normalize_name(&r[..end])
                        })
                        .collect();
                    let edges = optional_edges
                        .iter()
                        .filter(|edge| names.contains(&edge.name))
                        .cloned()
                        .collect();
                    (extra.clone(), edges)
                })
                .collect();
            let markers = match &package.markers {
                Some(toml::Value::String(marker)) => vec![marker.clone()],
                Some(toml::Value::Table(groups)) => groups
                    .values()
                    .filter_map(|m| m.as_str().map(String::from))
                    .collect(),
                _ => Vec::new(),
            };
            let unsupported = package
                .source
                .as_ref()
                .and_then(|s| s.get("type"))
                .and_then(toml::Value::as_str)
                .filter(|kind| !matches!(*kind, "legacy" | "pypi"))
                .map(|kind| format!("its source is `{kind}`, not a package index: pin it from an index, or build its wheel and give it with --wheels"));
            Ok(Locked {
                name: normalize_name(&package.name),
                version: parse_version(&package.name, &package.version)?,
                hashes: package
                    .files
                    .iter()
                    .filter_map(|file| file.hash.as_deref().and_then(sha256))
                    .collect(),
                line: line_of(text, &package.name, &package.version),
                markers,
                dependencies: required,
                optional,
                unsupported,
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
