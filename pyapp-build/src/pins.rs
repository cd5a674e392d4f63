//! `pinned-requirements.txt`: the exact version of every dependency, as `pip-compile` or
//! `uv pip compile` write it. Only `name==version` pins (with optional extras, markers and
//! `--hash=sha256:...` options) are accepted: a bundle must say exactly what it installs.

use std::path::Path;
use std::str::FromStr;

use pep508_rs::{Requirement, VersionOrUrl};

use crate::Refusal;

/// One pinned distribution.
#[derive(Debug, Clone)]
pub struct Pin {
    /// PEP 503-normalised name.
    pub name: String,
    pub version: pep440_rs::Version,
    /// The requirement as written (markers and extras included).
    pub requirement: Requirement,
    /// Allowed sha256 digests (lowercase hex); empty when the file has no `--hash`.
    pub hashes: Vec<String>,
    pub line: usize,
}

/// Parse the pins file at `path`.
pub fn load(path: &Path) -> anyhow::Result<Vec<Pin>> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Refusal::new(format!("{}: cannot read: {err}", path.display())))?;
    parse(&text, &path.display().to_string())
}

/// Parse the text of a pins file; `label` names it in errors.
pub fn parse(text: &str, label: &str) -> anyhow::Result<Vec<Pin>> {
    let mut pins: Vec<Pin> = Vec::new();
    for (line_no, logical) in logical_lines(text) {
        let fail = |what: String| Refusal::new(format!("{label}:{line_no}: {what}"));
        let mut words = logical.split_whitespace().peekable();
        let mut spec = String::new();
        let mut hashes = Vec::new();
        while let Some(word) = words.next() {
            if let Some(option) = word.strip_prefix("--") {
                let (option, value) = match option.split_once('=') {
                    Some((o, v)) => (o, v.to_string()),
                    None => (option, words.next().unwrap_or_default().to_string()),
                };
                match option {
                    "hash" => {
                        let digest = value.strip_prefix("sha256:").ok_or_else(|| {
                            fail(format!("--hash {value}: only sha256 hashes are supported"))
                        })?;
                        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return Err(
                                fail(format!("--hash {value}: not a sha256 hex digest")).into()
                            );
                        }
                        hashes.push(digest.to_ascii_lowercase());
                    }
                    "index-url" | "extra-index-url" | "find-links" | "trusted-host" => {}
                    other => {
                        return Err(fail(format!(
                            "option --{other} is not supported in a pins file"
                        ))
                        .into())
                    }
                }
            } else if word.starts_with('-') {
                return Err(fail(format!(
                    "`{word}` is not supported: list every dependency as name==version"
                ))
                .into());
            } else {
                if !spec.is_empty() {
                    spec.push(' ');
                }
                spec.push_str(word);
            }
        }
        if spec.is_empty() {
            continue;
        }
        let requirement = Requirement::from_str(&spec)
            .map_err(|err| fail(format!("`{spec}`: {}", first_line(&err.to_string()))))?;
        let version = exact_pin(&requirement).ok_or_else(|| {
            fail(format!(
                "`{spec}` is not an exact pin (write name==version)"
            ))
        })?;
        let name = pyapp_bundle::wheel_name::normalize_name(requirement.name.as_ref());
        if let Some(earlier) = pins.iter().find(|p| p.name == name) {
            return Err(fail(format!(
                "{name} is pinned twice (also on line {})",
                earlier.line
            ))
            .into());
        }
        pins.push(Pin {
            name,
            version,
            requirement,
            hashes,
            line: line_no,
        });
    }
    Ok(pins)
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

/// Join `\`-continued lines and drop comments, keeping the number of the first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let without_comment = match raw.find(" #").or_else(|| raw.starts_with('#').then_some(0)) {
            Some(at) => &raw[..at],
            None => raw,
        };
        let (body, continued) = match without_comment.trim_end().strip_suffix('\\') {
            Some(body) => (body, true),
            None => (without_comment, false),
        };
        let entry = current.get_or_insert_with(|| (index + 1, String::new()));
        entry.1.push(' ');
        entry.1.push_str(body.trim());
        if !continued {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out.into_iter()
        .filter(|(_, line)| !line.trim().is_empty())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(text, "pins.txt").map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn reads_pins_with_hashes_continuations_and_comments() {
        let pins = parse(
            "# header\nFlask==3.0.3 \\\n    --hash=sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n\
             pyyaml==6.0.2 ; python_version >= '3.8'  # yaml\n",
            "pins.txt",
        )
        .unwrap();
        assert_eq!(pins.len(), 2);
        assert_eq!(pins[0].name, "flask");
        assert_eq!(pins[0].version.to_string(), "3.0.3");
        assert_eq!(
            pins[0].hashes,
            ["abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"]
        );
        assert_eq!(pins[1].name, "pyyaml");
        assert_eq!(pins[1].line, 4);
    }

    #[test]
    fn refuses_loose_pins_duplicates_and_includes() {
        assert_eq!(
            error("flask>=3\n"),
            "pins.txt:1: `flask>=3` is not an exact pin (write name==version)"
        );
        assert_eq!(
            error("flask==3.0\nFlask==3.1\n"),
            "pins.txt:2: flask is pinned twice (also on line 1)"
        );
        assert_eq!(
            error("-r other.txt\n"),
            "pins.txt:1: `-r` is not supported: list every dependency as name==version"
        );
        assert_eq!(
            error("flask==3.0 --hash=md5:abc\n"),
            "pins.txt:1: --hash md5:abc: only sha256 hashes are supported"
        );
    }
}
