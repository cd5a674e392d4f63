//! The wheels of a build environment: `[build-system] requires` (and what a backend's
//! `get_requires_for_build_wheel` adds) resolved to wheels for the interpreter that runs the
//! build. A build backend's requirements are few and loose (`setuptools>=68`, hatchling and
//! its four dependencies), so the newest wheel that fits each requirement is taken, from the
//! `--wheels` directories and the wheel cache; a requirement met by none is `pip download`ed
//! into the cache with its dependencies (unless `--no-index`) and the resolution run again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::{ExtraName, MarkerEnvironment, Requirement, VersionOrUrl};
use pyapp_bundle::tags::Tag;
use pyapp_bundle::target::TargetPython;
use pyapp_bundle::wheel_name::{normalize_name, WheelName};

use crate::index::{self, IndexOptions, PipTarget};
use crate::wheel_contents::WheelContents;
use crate::wheels::list_wheels;
use crate::Refusal;

/// Where build requirements' wheels come from.
#[derive(Debug, Clone)]
pub struct WheelSources {
    /// The `--wheels` directories.
    pub dirs: Vec<PathBuf>,
    /// The wheel cache: downloads land here and are found here next time.
    pub cache: PathBuf,
    /// `--no-index`: never download.
    pub no_index: bool,
    pub index: IndexOptions,
    /// The interpreter that runs pip.
    pub python: PathBuf,
    pub quiet: bool,
}

impl WheelSources {
    /// The directories wheels are looked for in: `--wheels` first, then the cache.
    fn search_path(&self) -> Vec<PathBuf> {
        let mut dirs = self.dirs.clone();
        if self.cache.is_dir() {
            dirs.push(self.cache.clone());
        }
        dirs
    }
}

/// Why a resolution did not finish.
#[derive(Debug)]
enum Unresolved {
    /// Requirements no wheel in the search path meets.
    Missing(Vec<String>),
    /// A refusal to pass on (a conflict, a bad requirement).
    Failed(anyhow::Error),
}

/// The wheels (paths) that make `requires` installable on `target`; `place` names where the
/// requirements are written, for messages.
pub fn resolve(
    requires: &[String],
    target: &TargetPython,
    sources: &WheelSources,
    place: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let requirements = requires
        .iter()
        .map(|text| {
            Requirement::from_str(text).map_err(|err| {
                Refusal::new(format!(
                    "{place}: `{text}` is not a PEP 508 requirement: {}",
                    err.to_string().lines().next().unwrap_or_default()
                ))
                .into()
            })
        })
        .collect::<anyhow::Result<Vec<Requirement>>>()?;
    let env = target.marker_environment();
    let tags = target.supported_tags();
    let missing = match pick(&requirements, &sources.search_path(), &tags, &env, place) {
        Ok(wheels) => return Ok(wheels),
        Err(Unresolved::Failed(err)) => return Err(err),
        Err(Unresolved::Missing(missing)) => missing,
    };
    if sources.no_index {
        return Err(Refusal::new(format!(
            "{place}: no wheel in the --wheels directories for {} (and --no-index forbids downloading)",
            missing.join(", ")
        ))
        .with_hint("add the build backend's wheels to a --wheels directory: pip download -d DIR BACKEND")
        .into());
    }
    std::fs::create_dir_all(&sources.cache)
        .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", sources.cache.display()))?;
    index::download(
        &sources.python,
        &missing,
        &sources.cache,
        &sources.index,
        &PipTarget::default(),
        index::Fetch::WheelsWithDependencies,
        sources.quiet,
    )?;
    match pick(&requirements, &sources.search_path(), &tags, &env, place) {
        Ok(wheels) => Ok(wheels),
        Err(Unresolved::Failed(err)) => Err(err),
        Err(Unresolved::Missing(missing)) => Err(Refusal::new(format!(
            "{place}: pip download brought no wheel for {}",
            missing.join(", ")
        ))
        .into()),
    }
}

/// One resolution pass over the wheels in `dirs`.
fn pick(
    requirements: &[Requirement],
    dirs: &[PathBuf],
    tags: &[Tag],
    env: &MarkerEnvironment,
    place: &str,
) -> Result<Vec<PathBuf>, Unresolved> {
    let available = list_wheels(dirs).map_err(Unresolved::Failed)?;
    let mut chosen: BTreeMap<String, (PathBuf, WheelName, WheelContents)> = BTreeMap::new();
    let mut visited: BTreeSet<(String, Vec<ExtraName>)> = BTreeSet::new();
    let mut missing = Vec::new();
    let mut queue: VecDeque<(Requirement, Vec<ExtraName>, String)> = requirements
        .iter()
        .map(|r| (r.clone(), Vec::new(), place.to_string()))
        .collect();
    while let Some((requirement, parent_extras, wanted_by)) = queue.pop_front() {
        if !requirement.evaluate_markers(env, &parent_extras) {
            continue;
        }
        let name = normalize_name(requirement.name.as_ref());
        let specifiers = match &requirement.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(specifiers)) => Some(specifiers),
            Some(VersionOrUrl::Url(_)) => {
                return Err(Unresolved::Failed(
                    Refusal::new(format!(
                        "{wanted_by}: `{requirement}`: a URL requirement cannot be resolved from wheel directories"
                    ))
                    .into(),
                ))
            }
            None => None,
        };
        if !chosen.contains_key(&name) {
            let best = available
                .get(&name)
                .into_iter()
                .flatten()
                .filter(|(_, wheel)| {
                    specifiers.is_none_or(|s| s.contains(wheel.version()))
                        && !wheel.version().any_prerelease()
                })
                .filter_map(|(path, wheel)| {
                    wheel
                        .compatibility(tags)
                        .map(|rank| (wheel.version().clone(), std::cmp::Reverse(rank), path))
                })
                .max();
            let Some((_, _, path)) = best else {
                missing.push(if wanted_by == place {
                    requirement.to_string()
                } else {
                    format!("{requirement} (for {wanted_by})")
                });
                continue;
            };
            let file_name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let wheel = WheelName::parse(&file_name)
                .map_err(|err| Unresolved::Failed(Refusal::new(err.to_string()).into()))?;
            let contents = WheelContents::read(path, &file_name).map_err(Unresolved::Failed)?;
            chosen.insert(name.clone(), (path.clone(), wheel, contents));
        }
        let (_, wheel, contents) = &chosen[&name];
        if let Some(specifiers) = specifiers {
            if !specifiers.contains(wheel.version()) {
                return Err(Unresolved::Failed(
                    Refusal::new(format!(
                        "{wanted_by}: `{requirement}` conflicts with {} (chosen for another build requirement)",
                        wheel.file_name()
                    ))
                    .into(),
                ));
            }
        }
        let mut extras = requirement.extras.clone();
        extras.sort();
        if visited.insert((name.clone(), extras.clone())) {
            for dependency in &contents.requires_dist {
                queue.push_back((
                    dependency.clone(),
                    extras.clone(),
                    wheel.file_name().to_string(),
                ));
            }
        }
    }
    if missing.is_empty() {
        Ok(chosen.into_values().map(|(path, _, _)| path).collect())
    } else {
        Err(Unresolved::Missing(missing))
    }
}

/// The default wheel cache: `$XDG_CACHE_HOME/pyapp-build/wheels`, else
/// `~/.cache/pyapp-build/wheels`.
pub fn default_cache() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| Path::new(dir).is_absolute())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(base.join("pyapp-build").join("wheels"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// A wheel with only a METADATA file saying `requires`.
    fn wheel(dir: &Path, file_name: &str, requires: &[&str]) {
        let (name, version) = {
            let mut parts = file_name.split('-');
            (parts.next().unwrap(), parts.next().unwrap())
        };
        let file = std::fs::File::create(dir.join(file_name)).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        zip.start_file(
            format!("{name}-{version}.dist-info/METADATA"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
        for requirement in requires {
            metadata.push_str(&format!("Requires-Dist: {requirement}\n"));
        }
        zip.write_all(metadata.as_bytes()).unwrap();
        zip.finish().unwrap();
    }

    fn target() -> TargetPython {
        TargetPython::from_pip_options("3.11", "manylinux_2_17_x86_64").unwrap()
    }

    fn names(wheels: &[PathBuf]) -> Vec<String> {
        wheels
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    fn offline(dir: &Path) -> WheelSources {
        WheelSources {
            dirs: vec![dir.to_path_buf()],
            cache: dir.join("no-cache"),
            no_index: true,
            index: IndexOptions::default(),
            python: PathBuf::from("python3"),
            quiet: true,
        }
    }

    #[test]
    fn takes_the_newest_fitting_wheel_and_its_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        wheel(
            dir.path(),
            "hatchling-1.2.0-py3-none-any.whl",
            &["pluggy>=1", "tomli>=1; python_version < '3.11'"],
        );
        wheel(dir.path(), "hatchling-1.1.0-py3-none-any.whl", &[]);
        wheel(dir.path(), "hatchling-2.0.0a1-py3-none-any.whl", &[]);
        wheel(dir.path(), "pluggy-1.5.0-py3-none-any.whl", &[]);
        let wheels = resolve(
            &["hatchling>=1".into()],
            &target(),
            &offline(dir.path()),
            "pyproject.toml: [build-system]",
        )
        .unwrap();
        assert_eq!(
            names(&wheels),
            [
                "hatchling-1.2.0-py3-none-any.whl",
                "pluggy-1.5.0-py3-none-any.whl"
            ]
        );
    }

    #[test]
    fn names_what_is_missing_and_what_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        wheel(dir.path(), "a-1.0-py3-none-any.whl", &["b<2"]);
        wheel(dir.path(), "b-2.0-py3-none-any.whl", &[]);
        let err = resolve(
            &["a".into(), "c>=1".into()],
            &target(),
            &offline(dir.path()),
            "pyproject.toml: [build-system]",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "pyproject.toml: [build-system]: no wheel in the --wheels directories for c>=1, b<2 (for a-1.0-py3-none-any.whl) (and --no-index forbids downloading)"
        );
        let err = resolve(
            &["b".into(), "a".into()],
            &target(),
            &offline(dir.path()),
            "pyproject.toml: [build-system]",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "a-1.0-py3-none-any.whl: `b<2` conflicts with b-2.0-py3-none-any.whl (chosen for another build requirement)"
        );
    }
}
