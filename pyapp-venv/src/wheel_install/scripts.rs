//! Shebang lines for scripts in the venv's `bin/`: launchers, and `.data/scripts` files
//! whose first line is the `#!python` placeholder.
//!
//! Linux limits a `#!` line to 127 bytes and splits it at spaces, so a long or
//! space-containing interpreter path is started through `/bin/sh` with the `exec` trick
//! (a line that is a no-op string to Python and an `exec` to the shell).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The longest `#!` line the kernel reads in full.
const MAX_SHEBANG: usize = 127;

/// The first line(s) of a script run by `python`, with `args` after the interpreter.
fn shebang_with_args(python: &Path, args: &[u8]) -> Vec<u8> {
    let path = python.as_os_str().as_bytes();
    let simple = path.len() + args.len() + 2 <= MAX_SHEBANG && !path.contains(&b' ');
    let mut line = Vec::new();
    if simple {
        line.extend_from_slice(b"#!");
        line.extend_from_slice(path);
        line.extend_from_slice(args);
        line.push(b'\n');
    } else {
        // The venv path never contains quotes (Venv::create refuses them).
        line.extend_from_slice(b"#!/bin/sh\n'''exec' '");
        line.extend_from_slice(path);
        line.extend_from_slice(b"'");
        line.extend_from_slice(args);
        line.extend_from_slice(b" \"$0\" \"$@\"\n' '''\n");
    }
    line
}

/// The shebang of a script run by `python` (the venv's `bin/python`).
pub fn shebang(python: &Path) -> Vec<u8> {
    shebang_with_args(python, b"")
}

/// If `first_line` (with its line end) is the `#!python` / `#!pythonw` placeholder of a
/// wheel script, the line(s) to write instead; arguments after it are kept.
pub fn rewrite_placeholder(first_line: &[u8], python: &Path) -> Option<Vec<u8>> {
    let rest = first_line.strip_prefix(b"#!python")?;
    let rest = rest.strip_prefix(b"w").unwrap_or(rest);
    let rest = rest.strip_suffix(b"\n").unwrap_or(rest);
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    // `#!python3` or `#!pythonx` is some other program, not the placeholder.
    if !(rest.is_empty() || rest.starts_with(b" ") || rest.starts_with(b"\t")) {
        return None;
    }
    Some(shebang_with_args(python, rest))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn short_paths_get_a_plain_shebang() {
        let python = Path::new("/applications/hello/venv/bin/python");
        assert_eq!(shebang(python), b"#!/applications/hello/venv/bin/python\n");
        assert_eq!(
            rewrite_placeholder(b"#!python\n", python).unwrap(),
            b"#!/applications/hello/venv/bin/python\n"
        );
        assert_eq!(
            rewrite_placeholder(b"#!pythonw -u\r\n", python).unwrap(),
            b"#!/applications/hello/venv/bin/python -u\n"
        );
    }

    #[test]
    fn long_or_spaced_paths_go_through_sh() {
        let long = format!("/{}/bin/python", "x".repeat(130));
        for python in [long.as_str(), "/srv/my apps/venv/bin/python"] {
            let text = String::from_utf8(shebang(Path::new(python))).unwrap();
            assert_eq!(
                text,
                format!("#!/bin/sh\n'''exec' '{python}' \"$0\" \"$@\"\n' '''\n")
            );
        }
    }

    #[test]
    fn only_the_placeholder_is_rewritten() {
        let python = Path::new("/venv/bin/python");
        for line in [
            &b"#!python3\n"[..],
            b"#!/usr/bin/env python\n",
            b"import sys\n",
            b"",
        ] {
            assert_eq!(rewrite_placeholder(line, python), None, "{line:?}");
        }
    }

    #[test]
    fn the_sh_trick_runs_python() {
        let dir = tempfile::tempdir().unwrap();
        let spaced = dir.path().join("a dir");
        std::fs::create_dir(&spaced).unwrap();
        let python = spaced.join("python");
        let real = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap();
        let real = String::from_utf8(real.stdout).unwrap();
        std::os::unix::fs::symlink(real.trim(), &python).unwrap();
        let script = dir.path().join("script");
        let mut text = shebang(&python);
        text.extend_from_slice(b"import sys\nprint('args', sys.argv[1:])\n");
        std::fs::write(&script, text).unwrap();
        let output = std::process::Command::new("sh")
            .arg(&script)
            .args(["one", "two words"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "args ['one', 'two words']\n",
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
