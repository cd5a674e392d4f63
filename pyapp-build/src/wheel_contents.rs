//! What pyapp-build needs to know from inside a wheel, read once per wheel: its
//! `Requires-Dist` (for the closure check), the programs it installs into `bin/`
//! (console and GUI entry points, `.data/scripts/` files) for the command check, and the
//! core metadata the app's own wheel gives the bundle (name, version, summary,
//! `Requires-Python`).

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use pep508_rs::Requirement;

use crate::Refusal;

/// The parts of a wheel's contents the build checks use.
#[derive(Debug, Clone, Default)]
pub struct WheelContents {
    pub requires_dist: Vec<Requirement>,
    /// Names of the programs the wheel puts in the venv's `bin/`.
    pub programs: Vec<String>,
    /// METADATA's `Name`, as written.
    pub name: String,
    /// METADATA's `Version`, as written.
    pub version: String,
    pub summary: Option<String>,
    pub requires_python: Option<String>,
}

/// Cap on the size of the small text files read from a wheel.
const TEXT_CAP: u64 = 16 << 20;

impl WheelContents {
    /// Read the contents of the wheel at `path`; `label` names it in errors.
    pub fn read(path: &Path, label: &str) -> anyhow::Result<WheelContents> {
        let file = std::fs::File::open(path)?;
        let mut archive = zip::ZipArchive::new(file)
            .map_err(|err| Refusal::new(format!("{label}: not a valid wheel: {err}")))?;
        let names = archive
            .file_names()
            .map(|name| name.map(|name| name.into_owned()))
            .collect::<Result<Vec<String>, _>>()
            .map_err(|err| Refusal::new(format!("{label}: not a valid wheel: {err}")))?;
        let dist_infos: Vec<&str> = names
            .iter()
            .filter_map(|name| name.strip_suffix("/METADATA"))
            .filter(|dir| dir.ends_with(".dist-info") && !dir.contains('/'))
            .collect();
        let [dist_info] = dist_infos[..] else {
            return Err(Refusal::new(format!(
                "{label}: expected one *.dist-info/METADATA, found {}",
                dist_infos.len()
            ))
            .into());
        };
        let metadata = read_text(&mut archive, &format!("{dist_info}/METADATA"), label)?;
        let field = |name: &str| header(&metadata, name);
        let mut contents = WheelContents {
            requires_dist: requires_dist(&metadata, label)?,
            programs: Vec::new(),
            name: field("Name").unwrap_or_default(),
            version: field("Version").unwrap_or_default(),
            summary: field("Summary").filter(|summary| !summary.is_empty()),
            requires_python: field("Requires-Python").filter(|spec| !spec.is_empty()),
        };
        let entry_points_name = format!("{dist_info}/entry_points.txt");
        if names.contains(&entry_points_name) {
            let text = read_text(&mut archive, &entry_points_name, label)?;
            contents.programs.extend(script_entry_points(&text));
        }
        let data_scripts = format!("{}.data/scripts/", dist_info.trim_end_matches(".dist-info"));
        contents.programs.extend(
            names
                .iter()
                .filter_map(|name| name.strip_prefix(&data_scripts))
                .filter(|script| !script.is_empty() && !script.contains('/'))
                .map(str::to_string),
        );
        Ok(contents)
    }
}

fn read_text(
    archive: &mut zip::ZipArchive<std::fs::File>,
    name: &str,
    label: &str,
) -> anyhow::Result<String> {
    let mut text = String::new();
    archive
        .by_name(name)
        .map_err(|err| Refusal::new(format!("{label}: {name}: {err}")))?
        .take(TEXT_CAP)
        .read_to_string(&mut text)
        .map_err(|err| Refusal::new(format!("{label}: {name}: {err}")))?;
    Ok(text)
}

/// The first value of header `name` of a METADATA file.
fn header(metadata: &str, name: &str) -> Option<String> {
    metadata
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
}

/// The `Requires-Dist` header values of a METADATA file.
fn requires_dist(metadata: &str, label: &str) -> anyhow::Result<Vec<Requirement>> {
    let mut requirements = Vec::new();
    for line in metadata.lines().take_while(|line| !line.is_empty()) {
        let Some(value) = line.strip_prefix("Requires-Dist:") else {
            continue;
        };
        let requirement = Requirement::from_str(value.trim()).map_err(|err| {
            Refusal::new(format!(
                "{label}: METADATA: bad Requires-Dist `{}`: {}",
                value.trim(),
                err.to_string().lines().next().unwrap_or_default()
            ))
        })?;
        requirements.push(requirement);
    }
    Ok(requirements)
}

/// Names declared in the `[console_scripts]` and `[gui_scripts]` sections.
fn script_entry_points(text: &str) -> Vec<String> {
    let mut in_scripts = false;
    let mut names = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_scripts = line == "[console_scripts]" || line == "[gui_scripts]";
        } else if in_scripts {
            if let Some((name, _)) = line.split_once('=') {
                names.push(name.trim().to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_come_from_script_sections_only() {
        let text = "[console_scripts]\nflask = flask.cli:main\n\n[flask.commands]\nroutes = x:y\n[gui_scripts]\nviewer = v:main\n";
        assert_eq!(script_entry_points(text), ["flask", "viewer"]);
    }

    #[test]
    fn headers_end_at_the_first_blank_line() {
        let metadata = "Metadata-Version: 2.1\nName: My_App\nversion: 1.0\n\nSummary: body\n";
        assert_eq!(header(metadata, "Name").as_deref(), Some("My_App"));
        assert_eq!(header(metadata, "Version").as_deref(), Some("1.0"));
        assert_eq!(header(metadata, "Summary"), None);
    }
}
