//! Writing outside strings into unit files so that systemd reads back exactly the string
//! (systemd.syntax(7), systemd.service(5) "Command lines", systemd.exec(5) `Environment=`),
//! or refusing what unit-file syntax cannot carry (line breaks and other control characters).
//! Every value pyapp-install puts into a unit goes through one of these functions.

/// A value that cannot be written into a unit file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    #[error("{value:?} contains a control character (a line break would start a new directive)")]
    ControlCharacter { value: String },
    #[error("{value:?} ends with \"\\\", which systemd reads as a line continuation")]
    TrailingBackslash { value: String },
    #[error("{value:?} contains \"$\", which systemd cannot take literally in a program path")]
    DollarInProgram { value: String },
    #[error(
        "{value:?} has characters systemd path lists do not take literally \
         (allowed: letters, digits, \"/._+-@~\")"
    )]
    PathCharacters { value: String },
    #[error("{value:?} is not an absolute path")]
    RelativePath { value: String },
    #[error("{value:?} is not a valid user or group name")]
    AccountName { value: String },
    #[error(
        "{value:?} contains a character a glob pattern reads as a wildcard or an escape \
         (one of \"*?[]{{}}\\\")"
    )]
    GlobCharacters { value: String },
}

/// Refuses control characters (newline, carriage return, tab, NUL, DEL, C1...).
fn check_no_control(value: &str) -> Result<(), EscapeError> {
    if value.chars().any(char::is_control) {
        return Err(EscapeError::ControlCharacter {
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// A free-text value that systemd does not unquote (`Description=`): specifiers are
/// expanded, so `%` is doubled; a trailing `\` would join the next line, so it is refused.
/// Leading and trailing spaces are dropped, as systemd would drop them.
pub fn text(value: &str) -> Result<String, EscapeError> {
    check_no_control(value)?;
    let value = value.trim();
    if value.ends_with('\\') {
        return Err(EscapeError::TrailingBackslash {
            value: value.to_owned(),
        });
    }
    Ok(value.replace('%', "%%"))
}

/// One word of a command line, double-quoted: `\` and `"` are backslash-escaped (systemd
/// unquotes and C-unescapes each word), `%` is doubled (specifiers) and `$` is doubled
/// (environment variable substitution), so the process gets the string as it was given.
/// A quoted `;` is a literal argument, not a command separator.
pub fn exec_word(value: &str) -> Result<String, EscapeError> {
    check_no_control(value)?;
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '%' => quoted.push_str("%%"),
            '$' => quoted.push_str("$$"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    Ok(quoted)
}

/// The program of a command line: an absolute path, quoted like [`exec_word`]. systemd
/// does not substitute variables in the program's path, so `$$` would stay doubled: a `$`
/// there is refused instead.
pub fn exec_program(path: &str) -> Result<String, EscapeError> {
    if !path.starts_with('/') {
        return Err(EscapeError::RelativePath {
            value: path.to_owned(),
        });
    }
    if path.contains('$') {
        return Err(EscapeError::DollarInProgram {
            value: path.to_owned(),
        });
    }
    exec_word(path)
}

/// One `Environment=` assignment, `"NAME=value"`: `\` and `"` backslash-escaped, `%`
/// doubled. systemd does not substitute `$` in `Environment=`, so it stays as it is.
pub fn environment(name: &str, value: &str) -> Result<String, EscapeError> {
    let assignment = format!("{name}={value}");
    check_no_control(&assignment)?;
    let mut quoted = String::with_capacity(assignment.len() + 2);
    quoted.push('"');
    for c in assignment.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '%' => quoted.push_str("%%"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    Ok(quoted)
}

/// A line of an `EnvironmentFile=`: `NAME="VALUE"`, the value double-quoted with `\`, `"`,
/// `$` and `` ` `` escaped (systemd unquotes it as a shell would; no specifiers there).
pub fn environment_file_line(name: &str, value: &str) -> Result<String, EscapeError> {
    check_no_control(value)?;
    let mut line = format!("{name}=\"");
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            line.push('\\');
        }
        line.push(c);
    }
    line.push_str("\"\n");
    Ok(line)
}

/// An absolute path written bare into `WorkingDirectory=`, `ReadWritePaths=`,
/// `BindPaths=`, `PIDFile=` or `RootDirectory=`. These directives split on spaces and `:`
/// and expand specifiers, so only characters that mean nothing to them are accepted;
/// pyapp's own paths (`/applications/APP/...`) always qualify.
pub fn path(value: &str) -> Result<String, EscapeError> {
    if !value.starts_with('/') {
        return Err(EscapeError::RelativePath {
            value: value.to_owned(),
        });
    }
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '+' | '-' | '@' | '~'));
    if !plain {
        return Err(EscapeError::PathCharacters {
            value: value.to_owned(),
        });
    }
    Ok(value.to_owned())
}

/// An absolute directory, written bare as the literal part of a `PathExistsGlob=` pattern
/// (systemd.path(5)): the value is taken whole (spaces included) after specifier expansion,
/// so `%` is doubled; glob(3) would read `*?[]{}` and `\` as pattern syntax, so they are
/// refused, as are control characters. (Spaces are fine: the pattern continues after it.)
pub fn glob_dir(value: &str) -> Result<String, EscapeError> {
    check_no_control(value)?;
    if !value.starts_with('/') {
        return Err(EscapeError::RelativePath {
            value: value.to_owned(),
        });
    }
    if value
        .chars()
        .any(|c| matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\'))
    {
        return Err(EscapeError::GlobCharacters {
            value: value.to_owned(),
        });
    }
    Ok(value.replace('%', "%%"))
}

/// A user or group name for `User=`/`Group=`: the portable subset systemd accepts
/// (`[a-z_][a-z0-9_-]*`, at most 31 characters), so nothing needs quoting.
pub fn account(value: &str) -> Result<String, EscapeError> {
    let valid = value.len() <= 31
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if !valid {
        return Err(EscapeError::AccountName {
            value: value.to_owned(),
        });
    }
    Ok(value.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn environment_file_lines_quote_what_systemd_would_unquote() {
        assert_eq!(
            environment_file_line("GREETING", r#"a "b" $HOME `x` \n"#).unwrap(),
            "GREETING=\"a \\\"b\\\" \\$HOME \\`x\\` \\\\n\"\n"
        );
        assert!(environment_file_line("BAD", "a\nEVIL=1").is_err());
    }

    #[test]
    fn line_breaks_and_control_characters_are_refused_everywhere() {
        for hostile in [
            "web\nExecStartPre=/bin/sh -c 'id'",
            "a\rb",
            "a\0b",
            "a\tb",
            "a\u{7f}",
            "a\u{85}b",
        ] {
            assert!(matches!(
                text(hostile),
                Err(EscapeError::ControlCharacter { .. })
            ));
            assert!(matches!(
                exec_word(hostile),
                Err(EscapeError::ControlCharacter { .. })
            ));
            assert!(matches!(
                environment("X", hostile),
                Err(EscapeError::ControlCharacter { .. })
            ));
            assert!(path(&format!("/{hostile}")).is_err());
        }
    }

    #[test]
    fn descriptions_keep_specifiers_literal_and_refuse_continuations() {
        assert_eq!(text("100% %n of %i").unwrap(), "100%% %%n of %%i");
        assert_eq!(
            text("costs $HOME ; rm -rf /").unwrap(),
            "costs $HOME ; rm -rf /"
        );
        assert_eq!(text("say \"hi\" \\o/").unwrap(), "say \"hi\" \\o/");
        assert_eq!(text("  padded  ").unwrap(), "padded");
        assert_eq!(
            text("ends with \\").unwrap_err().to_string(),
            "\"ends with \\\\\" ends with \"\\\", which systemd reads as a line continuation"
        );
        assert!(text("ends with \\   ").is_err());
    }

    #[test]
    fn command_words_are_quoted_and_escaped() {
        assert_eq!(exec_word("--bind").unwrap(), "\"--bind\"");
        assert_eq!(exec_word("$HOME").unwrap(), "\"$$HOME\"");
        assert_eq!(exec_word("${PATH}").unwrap(), "\"$${PATH}\"");
        assert_eq!(exec_word("%n").unwrap(), "\"%%n\"");
        assert_eq!(exec_word(";").unwrap(), "\";\"");
        assert_eq!(exec_word("a ; b").unwrap(), "\"a ; b\"");
        assert_eq!(exec_word("back\\").unwrap(), "\"back\\\\\"");
        assert_eq!(exec_word("say \"hi\"").unwrap(), "\"say \\\"hi\\\"\"");
        assert_eq!(exec_word("it's").unwrap(), "\"it's\"");
        assert_eq!(exec_word("").unwrap(), "\"\"");
        assert_eq!(exec_word("-").unwrap(), "\"-\"");
    }

    #[test]
    fn programs_are_absolute_without_dollar() {
        assert_eq!(
            exec_program("/applications/hello/current/venv/bin/gunicorn").unwrap(),
            "\"/applications/hello/current/venv/bin/gunicorn\""
        );
        assert_eq!(exec_program("/opt/100%/x").unwrap(), "\"/opt/100%%/x\"");
        assert!(matches!(
            exec_program("/opt/$x/bin"),
            Err(EscapeError::DollarInProgram { .. })
        ));
        assert!(matches!(
            exec_program("gunicorn"),
            Err(EscapeError::RelativePath { .. })
        ));
        assert!(matches!(
            exec_program("-/bin/true"),
            Err(EscapeError::RelativePath { .. })
        ));
    }

    #[test]
    fn environment_assignments_are_quoted_and_escaped() {
        assert_eq!(
            environment("PYAPP_NAME", "hello").unwrap(),
            "\"PYAPP_NAME=hello\""
        );
        assert_eq!(environment("X", "100%n").unwrap(), "\"X=100%%n\"");
        assert_eq!(environment("X", "$HOME").unwrap(), "\"X=$HOME\"");
        assert_eq!(
            environment("X", "a\" Y=\"b").unwrap(),
            "\"X=a\\\" Y=\\\"b\""
        );
        assert_eq!(
            environment("X", "trailing\\").unwrap(),
            "\"X=trailing\\\\\""
        );
        assert_eq!(environment("X", "a ; b").unwrap(), "\"X=a ; b\"");
    }

    #[test]
    fn paths_and_accounts_are_plain() {
        assert_eq!(
            path("/applications/hello/data").unwrap(),
            "/applications/hello/data"
        );
        for bad in [
            "/apps dir/x",
            "/a:b",
            "/a%n",
            "/a$b",
            "/a\\b",
            "/a\"b",
            "/a;b",
            "relative",
        ] {
            assert!(path(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            glob_dir("/srv/pyapp inbox/100%").unwrap(),
            "/srv/pyapp inbox/100%%"
        );
        for bad in [
            "/in*", "/in?", "/in[1]", "/in{a,b}", "/in\\x", "in", "/a\nb",
        ] {
            assert!(glob_dir(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(account("hello").unwrap(), "hello");
        assert_eq!(account("_pyapp-hello").unwrap(), "_pyapp-hello");
        for bad in [
            "",
            "Hello",
            "0day",
            "a b",
            "a\nb",
            "root:x",
            &"a".repeat(32),
        ] {
            assert!(account(bad).is_err(), "{bad:?} accepted");
        }
    }
}
