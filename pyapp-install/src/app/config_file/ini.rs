//! The INI form of the config file (`file-format: ini`, FORMAT.md 4.1): one `[SECTION]` of
//! `key = value` lines, read the way Python's `configparser` (with `interpolation=None`)
//! reads them. A value the format cannot carry unchanged is refused, never altered.

/// A line of an INI file that cannot be read: its 1-based number and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniError {
    pub line: usize,
    pub message: String,
}

/// The `key = value` pairs of the file, in file order; the file has exactly one section,
/// `[section]`, and every key is in it. Keys are lower-cased (as configparser does); a
/// value continues on the following indented lines, joined with `\n`; full-line comments
/// start with `#` or `;`; an empty line ends a value.
pub fn parse(text: &str, section: &str) -> Result<Vec<(String, String)>, IniError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut in_section = false;
    let mut continuing = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let error = |message: String| IniError {
            line: number,
            message,
        };
        let stripped = line.trim();
        if stripped.starts_with(['#', ';']) {
            continue;
        }
        if stripped.is_empty() {
            continuing = false;
            continue;
        }
        if continuing && line.starts_with([' ', '\t']) {
            if let Some((_, value)) = pairs.last_mut() {
                value.push('\n');
                value.push_str(stripped);
            }
            continue;
        }
        continuing = false;
        if let Some(header) = stripped.strip_prefix('[') {
            let name = header
                .strip_suffix(']')
                .ok_or_else(|| error(format!("{stripped:?} is not a section header")))?;
            if name != section {
                return Err(error(format!(
                    "only the [{section}] section is read (found [{name}])"
                )));
            }
            if in_section {
                return Err(error(format!("[{section}] is given twice")));
            }
            in_section = true;
            continue;
        }
        if !in_section {
            return Err(error(format!(
                "{stripped:?} comes before the [{section}] section"
            )));
        }
        let split = stripped
            .find(['=', ':'])
            .ok_or_else(|| error(format!("{stripped:?} is not a `key = value` line")))?;
        let key = stripped[..split].trim().to_ascii_lowercase();
        let value = stripped[split + 1..].trim().to_owned();
        if key.is_empty() {
            return Err(error(format!("{stripped:?} has no key")));
        }
        if pairs.iter().any(|(seen, _)| *seen == key) {
            return Err(error(format!("{key}: duplicate key")));
        }
        pairs.push((key, value));
        continuing = true;
    }
    Ok(pairs)
}

/// `value` as it follows `key = `: further lines indented by four spaces. `None` when
/// [`parse`] would not read it back unchanged (leading or trailing spaces on a line, an
/// empty line, a line starting with `#` or `;`).
pub fn render_value(value: &str) -> Option<String> {
    let rendered = value.replace('\n', "\n    ");
    let line = format!("[s]\nk = {rendered}\n");
    match parse(&line, "s").ok()?.as_slice() {
        [(_, read)] if read == value => Some(rendered),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text, "app").unwrap()
    }

    fn error(text: &str) -> String {
        let error = parse(text, "app").unwrap_err();
        format!("{}: {}", error.line, error.message)
    }

    #[test]
    fn reads_what_configparser_reads() {
        let text = "# header\n\n[app]\n; comment\nname = Hello = world\nWorkers: 4\n\
                    motd = first\n    second\n\tthird\n\nempty =\n";
        assert_eq!(
            pairs(text),
            [
                ("name".to_owned(), "Hello = world".to_owned()),
                ("workers".to_owned(), "4".to_owned()),
                ("motd".to_owned(), "first\nsecond\nthird".to_owned()),
                ("empty".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn refuses_what_it_would_drop() {
        assert_eq!(
            error("[app]\na = 1\n[other]\nb = 2\n"),
            "3: only the [app] section is read (found [other])"
        );
        assert_eq!(
            error("a = 1\n"),
            "1: \"a = 1\" comes before the [app] section"
        );
        assert_eq!(error("[app]\na = 1\nA = 2\n"), "3: a: duplicate key");
        assert_eq!(
            error("[app]\njust words\n"),
            "2: \"just words\" is not a `key = value` line"
        );
        assert_eq!(error("[app]\n[app]\n"), "2: [app] is given twice");
        assert_eq!(error("[app\n"), "1: \"[app\" is not a section header");
    }

    #[test]
    fn values_round_trip_or_are_refused() {
        for value in ["Hello", "a = b", "# not a comment", "", "two\nlines", "x;y"] {
            let rendered = render_value(value).unwrap();
            let read = pairs(&format!("[app]\nk = {rendered}\n"));
            assert_eq!(read, [("k".to_owned(), value.to_owned())], "{value:?}");
        }
        for value in [" padded", "trailing ", "a\n\nb", "a\n# c", "a\n", "a\n ;b"] {
            assert_eq!(render_value(value), None, "{value:?}");
        }
    }
}
