//! `pinned-requirements.txt`: the exact version of every dependency, read by pip's rules
//! for requirement files (spec/FORMAT.md 3.3) so that what `pip-compile` and
//! `uv pip compile` write is read as pip reads it. Only `name==version` pins (with optional
//! extras, markers and `--hash=sha256:...` options) are accepted: a bundle must say exactly
//! what it installs.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::{MarkerEnvironment, Requirement, VersionOrUrl};

use crate::Refusal;

/// One pinned distribution.
#[derive(Debug, Clone)]
pub struct Pin {
    /// PEP 503-normalised name.
    pub name: String,
    pub version: pep440_rs::Version,
    /// The requirement as written (markers and extras included).
    pub requirement: Requirement,
    /// Allowed sha256 digests (lowercase hex); empty when the line has no `--hash`.
    pub hashes: Vec<String>,
    /// The file the pin is in, relative to the directory of the top-level file.
    pub file: PathBuf,
    /// The line the pin starts on.
    pub line: usize,
}

impl Pin {
    /// `FILE:LINE`, where the pin is written.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// A line of a `-c` constraints file: it pins nothing, but a pin of its name must satisfy it.
#[derive(Debug, Clone)]
struct Constraint {
    requirement: Requirement,
    place: String,
}

/// What a requirement file and the files it includes say.
#[derive(Debug, Default)]
pub struct Requirements {
    pins: Vec<Pin>,
    constraints: Vec<Constraint>,
}

/// Whether a file was named by `-r` (its lines are pins) or `-c` (constraints).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Requirements,
    Constraints,
}

/// Read the requirement file at `path` and every file it includes.
pub fn load(path: &Path) -> anyhow::Result<Requirements> {
    let mut reader = Reader {
        root: path.parent().unwrap_or(Path::new("")).to_path_buf(),
        open: Vec::new(),
        found: Requirements::default(),
    };
    let label = PathBuf::from(path.file_name().unwrap_or(path.as_os_str()));
    let text = std::fs::read_to_string(path)
        .map_err(|err| Refusal::new(format!("{}: cannot read: {err}", label.display())))?;
    reader.read(&label, &text, Kind::Requirements)?;
    Ok(reader.found)
}

impl Requirements {
    /// The pins whose markers hold in `env`: at most one per name, each satisfying every
    /// constraint whose markers hold there.
    pub fn for_target(self, env: &MarkerEnvironment) -> anyhow::Result<Vec<Pin>> {
        let pins: Vec<Pin> = self
            .pins
            .into_iter()
            .filter(|pin| pin.requirement.evaluate_markers(env, &[]))
            .collect();
        for (index, pin) in pins.iter().enumerate() {
            if let Some(earlier) = pins[..index].iter().find(|p| p.name == pin.name) {
                return Err(Refusal::new(format!(
                    "{}: {} is pinned twice (also at {})",
                    pin.place(),
                    pin.name,
                    earlier.place()
                ))
                .into());
            }
        }
        for constraint in &self.constraints {
            if !constraint.requirement.evaluate_markers(env, &[]) {
                continue;
            }
            let name =
                pyapp_bundle::wheel_name::normalize_name(constraint.requirement.name.as_ref());
            let Some(pin) = pins.iter().find(|pin| pin.name == name) else {
                continue;
            };
            if let Some(VersionOrUrl::VersionSpecifier(specifiers)) =
                &constraint.requirement.version_or_url
            {
                if !specifiers.contains(&pin.version) {
                    return Err(Refusal::new(format!(
                        "{}: the constraint `{}` excludes {}=={}, pinned at {}",
                        constraint.place,
                        constraint.requirement,
                        pin.name,
                        pin.version,
                        pin.place()
                    ))
                    .into());
                }
            }
        }
        Ok(pins)
    }
}

struct Reader {
    /// The directory of the top-level file: labels are relative to it.
    root: PathBuf,
    /// The files being read, outermost first: canonical path and label.
    open: Vec<(PathBuf, PathBuf)>,
    found: Requirements,
}

impl Reader {
    /// Read the file labelled `label` (relative to the root), whose text is `text`.
    fn read(&mut self, label: &Path, text: &str, kind: Kind) -> anyhow::Result<()> {
        self.open.push((self.canonical(label), label.to_path_buf()));
        for (line, logical) in logical_lines(text) {
            let place = format!("{}:{line}", label.display());
            match parse_line(&logical) {
                Ok(Line::Include(include_kind, target)) => {
                    self.include(label, &place, include_kind, &target)?;
                }
                Ok(Line::Requirement(spec, hashes)) => self
                    .requirement(kind, &spec, hashes, label, line)
                    .map_err(|what| Refusal::new(format!("{place}: {what}")))?,
                Err(what) => return Err(Refusal::new(format!("{place}: {what}")).into()),
            }
        }
        self.open.pop();
        Ok(())
    }

    /// The canonical path of the file labelled `label`, to tell that two labels name it.
    fn canonical(&self, label: &Path) -> PathBuf {
        let path = self.root.join(label);
        std::fs::canonicalize(&path).unwrap_or(path)
    }

    /// Take the requirement `spec` on line `line` of `label` as a pin or a constraint.
    fn requirement(
        &mut self,
        kind: Kind,
        spec: &str,
        hashes: Vec<String>,
        label: &Path,
        line: usize,
    ) -> Result<(), String> {
        let requirement = Requirement::from_str(spec)
            .map_err(|err| format!("`{spec}`: {}", first_line(&err.to_string())))?;
        match kind {
            Kind::Requirements => {
                let version = exact_pin(&requirement)
                    .ok_or_else(|| format!("`{spec}` is not an exact pin (write name==version)"))?;
                self.found.pins.push(Pin {
                    name: pyapp_bundle::wheel_name::normalize_name(requirement.name.as_ref()),
                    version,
                    requirement,
                    hashes,
                    file: label.to_path_buf(),
                    line,
                });
            }
            Kind::Constraints => {
                if !hashes.is_empty() {
                    return Err(
                        "--hash in a constraints file is not supported: put the hashes on the pin"
                            .into(),
                    );
                }
                if matches!(requirement.version_or_url, Some(VersionOrUrl::Url(_))) {
                    return Err(format!(
                        "`{spec}`: a constraint must be a version, not a URL"
                    ));
                }
                self.found.constraints.push(Constraint {
                    requirement,
                    place: format!("{}:{line}", label.display()),
                });
            }
        }
        Ok(())
    }

    /// Read the file that `-r`/`-c TARGET` on `place` of `label` names, relative to `label`.
    fn include(
        &mut self,
        label: &Path,
        place: &str,
        kind: Kind,
        target: &str,
    ) -> anyhow::Result<()> {
        let option = match kind {
            Kind::Requirements => "-r",
            Kind::Constraints => "-c",
        };
        let fail = |what: String| Refusal::new(format!("{place}: {option} {target}: {what}"));
        if target.contains("://") {
            return Err(fail("only local files can be included".into()).into());
        }
        let included = label.parent().unwrap_or(Path::new("")).join(target);
        let text = std::fs::read_to_string(self.root.join(&included))
            .map_err(|err| fail(format!("cannot read {}: {err}", included.display())))?;
        let canonical = self.canonical(&included);
        if let Some(at) = self.open.iter().position(|(open, _)| *open == canonical) {
            let cycle: Vec<String> = self.open[at..]
                .iter()
                .map(|(_, open)| open.display().to_string())
                .chain([included.display().to_string()])
                .collect();
            return Err(fail(format!(
                "the files include each other ({})",
                cycle.join(" -> ")
            ))
            .into());
        }
        self.read(&included, &text, kind)
    }
}

/// What one logical line says.
enum Line {
    /// `-r FILE` or `-c FILE`.
    Include(Kind, String),
    /// A requirement and the sha256 digests of its `--hash` options.
    Requirement(String, Vec<String>),
}

/// Parse a logical line as pip does: the words up to the first one that starts with `-`
/// are the requirement, the rest are options, split like a shell would.
fn parse_line(line: &str) -> Result<Line, String> {
    let words: Vec<&str> = line.split(' ').collect();
    let first_option = words
        .iter()
        .position(|word| word.starts_with('-'))
        .unwrap_or(words.len());
    let spec = words[..first_option].join(" ").trim().to_string();
    let options = words[first_option..].join(" ");
    let tokens = shlex::split(&options)
        .ok_or_else(|| format!("`{options}`: unbalanced quotes or a trailing backslash"))?;
    let mut tokens = tokens.into_iter();
    let mut hashes = Vec::new();
    let mut include = None;
    while let Some(token) = tokens.next() {
        let (option, attached) = split_option(&token);
        let mut value = || {
            attached
                .map(str::to_string)
                .or_else(|| tokens.next())
                .ok_or_else(|| format!("{option} needs a value"))
        };
        match option {
            "--hash" if !spec.is_empty() => hashes.push(sha256_digest(&value()?)?),
            "--hash" => return Err("--hash belongs on the line of a requirement".into()),
            "-r" | "--requirement" | "-c" | "--constraint"
                if spec.is_empty() && include.is_none() =>
            {
                let kind = if matches!(option, "-r" | "--requirement") {
                    Kind::Requirements
                } else {
                    Kind::Constraints
                };
                include = Some(Line::Include(kind, value()?));
            }
            "-r" | "--requirement" | "-c" | "--constraint" => {
                return Err(format!("{option} must be on a line of its own"))
            }
            other => return Err(unsupported(other)),
        }
    }
    match include {
        Some(include) => Ok(include),
        None => Ok(Line::Requirement(spec, hashes)),
    }
}

/// `--name=value` -> (`--name`, `value`); `-rFILE` -> (`-r`, `FILE`); otherwise no value.
fn split_option(token: &str) -> (&str, Option<&str>) {
    if token.starts_with("--") {
        match token.split_once('=') {
            Some((option, value)) => (option, Some(value)),
            None => (token, None),
        }
    } else {
        match token.char_indices().nth(2) {
            Some((at, _)) => (&token[..at], Some(&token[at..])),
            None => (token, None),
        }
    }
}

/// Why the option `option` is refused, and what to do instead.
fn unsupported(option: &str) -> String {
    let instead = match option {
        "-i" | "--index-url" | "--extra-index-url" | "--no-index" => {
            "give pyapp-build --index-url/--extra-index-url/--no-index instead (pip-compile: --no-emit-index-url)"
        }
        "-f" | "--find-links" => {
            "give pyapp-build --wheels DIR instead (pip-compile: --no-emit-find-links)"
        }
        "--trusted-host" => "remove it (pip-compile: --no-emit-trusted-host)",
        "-e" | "--editable" => "pin the distribution as name==version and give its wheel",
        _ => "list every dependency as name==version",
    };
    format!("option {option} is not supported in a pinned requirements file: {instead}")
}

/// The lowercase hex digest of a `sha256:HEX` value of `--hash`.
fn sha256_digest(value: &str) -> Result<String, String> {
    let digest = value
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("--hash {value}: only sha256 hashes are supported"))?;
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("--hash {value}: not a sha256 hex digest"));
    }
    Ok(digest.to_ascii_lowercase())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// The version of a `name==version` requirement, or None for anything looser.
fn exact_pin(requirement: &Requirement) -> Option<pep440_rs::Version> {
    let Some(VersionOrUrl::VersionSpecifier(specifiers)) = &requirement.version_or_url else {
        return None;
    };
    let [only] = specifiers.iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    (*only.operator() == pep440_rs::Operator::Equal).then(|| only.version().clone())
}

/// Where the comment of a line starts: at a `#` that begins the line or follows whitespace.
fn comment_start(line: &str) -> Option<usize> {
    let mut previous_is_space = true;
    for (at, c) in line.char_indices() {
        if c == '#' && previous_is_space {
            return Some(at);
        }
        previous_is_space = c.is_whitespace();
    }
    None
}

/// The logical lines of `text` with the number of the line each starts on, as pip makes
/// them: a line ending in `\` continues on the next one (the backslash dropped, no space
/// added) unless it is a comment line; then comments are cut off the joined line, so a
/// comment before a trailing `\` takes the next line with it; blank lines are skipped.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut joined = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let comment_line = raw.trim_start().starts_with('#');
        let entry = pending.get_or_insert_with(|| (index + 1, String::new()));
        if raw.ends_with('\\') && !comment_line {
            entry.1.push_str(raw.trim_matches('\\'));
            continue;
        }
        if comment_line {
            entry.1.push(' ');
        }
        entry.1.push_str(raw);
        joined.extend(pending.take());
    }
    joined.extend(pending);
    joined
        .into_iter()
        .map(|(line, text)| {
            let code = comment_start(&text).map_or(text.as_str(), |at| &text[..at]);
            (line, code.trim().to_string())
        })
        .filter(|(_, text)| !text.is_empty())
        .collect()
}

#[cfg(test)]
mod tests;
