#![allow(clippy::unwrap_used)]

use std::path::Path;

use super::*;

/// A directory with `files` (name, text) in it.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// The pins of the file `pins.txt` with the text `text`, for CPython 3.11 on Linux.
fn pins(text: &str) -> Vec<Pin> {
    pins_of(&tree(&[("pins.txt", text)]))
}

fn pins_of(dir: &tempfile::TempDir) -> Vec<Pin> {
    load(&dir.path().join("pins.txt"))
        .and_then(|found| found.for_target(&linux_311()))
        .unwrap()
}

/// The one-line refusal of `pins.txt` in `dir`.
fn refusal_of(dir: &tempfile::TempDir) -> String {
    let message = load(&dir.path().join("pins.txt"))
        .and_then(|found| found.for_target(&linux_311()))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert_eq!(message.lines().count(), 1, "{message}");
    message
}

fn refusal(text: &str) -> String {
    refusal_of(&tree(&[("pins.txt", text)]))
}

fn linux_311() -> MarkerEnvironment {
    pyapp_bundle::target::TargetPython::from_pip_options("3.11", "manylinux_2_17_x86_64")
        .unwrap()
        .marker_environment()
}

fn names(pins: &[Pin]) -> Vec<String> {
    pins.iter()
        .map(|pin| format!("{}=={}", pin.name, pin.version))
        .collect()
}

const DIGEST: &str = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

#[test]
fn a_hash_starts_a_comment_only_at_the_start_of_a_line_or_after_whitespace() {
    let found = pins("# a #b\nsix==1.17.0\t# note\n  # indented\nflask==3.0.3 # x#y\n");
    assert_eq!(names(&found), ["six==1.17.0", "flask==3.0.3"]);
    assert_eq!((found[0].line, found[1].line), (2, 4));
    // `#` inside a word is not a comment: pip hands `six==1.17.0#x` to the parser too.
    assert!(
        refusal("six==1.17.0#x\n").starts_with("pins.txt:1: `six==1.17.0#x`: "),
        "{}",
        refusal("six==1.17.0#x\n")
    );
}

#[test]
fn continued_lines_carry_hashes_and_comments_end_them() {
    let text = format!(
        "Flask==3.0.3 \\\n    --hash=sha256:{} \\\n    --hash=sha256:{DIGEST}\n    # via -r requirements.in\n\
         pyyaml==6.0.1 \\\n  # a comment ends the continued line\nsix==1.17.0 \\\n",
        DIGEST.to_uppercase().replace('A', "0")
    );
    let found = pins(&text);
    assert_eq!(
        names(&found),
        ["flask==3.0.3", "pyyaml==6.0.1", "six==1.17.0"]
    );
    assert_eq!(
        found[0].hashes,
        [DIGEST.replace('a', "0"), DIGEST.to_string()]
    );
    assert_eq!(
        found.iter().map(|pin| pin.line).collect::<Vec<_>>(),
        [1, 5, 7]
    );
    // A backslash joins without a space, as in pip; a comment before a trailing backslash
    // runs on into the next line, which is dropped with it (pip reads `foo==1` and
    // `baz==3` here, not `bar==2`).
    assert_eq!(names(&pins("six==\\\n1.17.0\n")), ["six==1.17.0"]);
    assert_eq!(
        names(&pins("foo==1 # c \\\nbar==2\nbaz==3 \\\n# c2 \\\nqux==4\n")),
        ["foo==1", "baz==3", "qux==4"]
    );
}

#[test]
fn markers_are_evaluated_for_the_target() {
    let found = pins(
        "colorama==0.4.6 ; sys_platform == 'win32'\n\
         numpy==1.26.4 ; python_version < '3.12'\n\
         numpy==2.1.0 ; python_version >= '3.12'\n\
         tomli==2.0.1; python_version < \"3.11\"\n",
    );
    assert_eq!(names(&found), ["numpy==1.26.4"]);
    assert_eq!(
        refusal("six==1.16.0\nSix==1.17.0 ; os_name == 'posix'\n"),
        "pins.txt:2: six is pinned twice (also at pins.txt:1)"
    );
}

#[test]
fn includes_are_read_relative_to_the_including_file() {
    let dir = tree(&[
        (
            "pins.txt",
            "-r requirements/base.txt\n--constraint=limits.txt\nflask==3.0.3\n",
        ),
        ("requirements/base.txt", "-rshared/more.txt\nsix==1.17.0\n"),
        (
            "requirements/shared/more.txt",
            "click==8.5.1  # via flask\n",
        ),
        (
            "limits.txt",
            "flask<4\nwerkzeug<3  # not pinned: nothing to check\n",
        ),
    ]);
    let found = pins_of(&dir);
    assert_eq!(
        names(&found),
        ["click==8.5.1", "six==1.17.0", "flask==3.0.3"]
    );
    assert_eq!(found[0].place(), "requirements/shared/more.txt:1");
    assert_eq!(found[1].place(), "requirements/base.txt:2");
}

#[test]
fn constraints_must_hold_for_the_pins() {
    let dir = tree(&[
        ("pins.txt", "flask==3.0.3\n-c c.txt\n"),
        ("c.txt", "\n\nflask<3 ; python_version >= '3'\n"),
    ]);
    assert_eq!(
        refusal_of(&dir),
        "c.txt:3: the constraint `flask<3 ; python_full_version >= '3'` excludes flask==3.0.3, pinned at pins.txt:1"
    );
    let dir = tree(&[
        ("pins.txt", "flask==3.0.3\n-c c.txt\n"),
        (
            "c.txt",
            format!("flask==3.0.3 --hash=sha256:{DIGEST}\n").as_str(),
        ),
    ]);
    assert_eq!(
        refusal_of(&dir),
        "c.txt:1: --hash in a constraints file is not supported: put the hashes on the pin"
    );
}

#[test]
fn include_cycles_and_missing_files_are_refused() {
    let dir = tree(&[
        ("pins.txt", "six==1.17.0\n-r a/one.txt\n"),
        ("a/one.txt", "-r ../pins.txt\n"),
    ]);
    assert_eq!(
        refusal_of(&dir),
        "a/one.txt:1: -r ../pins.txt: the files include each other (pins.txt -> a/one.txt -> a/../pins.txt)"
    );
    let message = refusal("\n-r missing.txt\n");
    assert!(
        message.starts_with("pins.txt:2: -r missing.txt: cannot read missing.txt: "),
        "{message}"
    );
    assert_eq!(
        refusal("-r https://example.org/pins.txt\n"),
        "pins.txt:1: -r https://example.org/pins.txt: only local files can be included"
    );
}

#[test]
fn unsupported_options_are_refused_naming_them() {
    for (line, expected) in [
        ("-e ./src", "pins.txt:1: option -e is not supported in a pinned requirements file: pin the distribution as name==version and give its wheel"),
        ("--index-url https://pypi.org/simple", "pins.txt:1: option --index-url is not supported in a pinned requirements file: give pyapp-build --index-url/--extra-index-url/--no-index instead (pip-compile: --no-emit-index-url)"),
        ("-f /opt/wheels", "pins.txt:1: option -f is not supported in a pinned requirements file: give pyapp-build --wheels DIR instead (pip-compile: --no-emit-find-links)"),
        ("--find-links=/opt/wheels", "pins.txt:1: option --find-links is not supported in a pinned requirements file: give pyapp-build --wheels DIR instead (pip-compile: --no-emit-find-links)"),
        ("--pre", "pins.txt:1: option --pre is not supported in a pinned requirements file: list every dependency as name==version"),
        ("six==1.17.0 --global-option=x", "pins.txt:1: option --global-option is not supported in a pinned requirements file: list every dependency as name==version"),
        ("six==1.17.0 -r other.txt", "pins.txt:1: -r must be on a line of its own"),
        ("--hash=sha256:00", "pins.txt:1: --hash belongs on the line of a requirement"),
        ("six==1.17.0 --hash", "pins.txt:1: --hash needs a value"),
        ("six==1.17.0 --hash=md5:abc", "pins.txt:1: --hash md5:abc: only sha256 hashes are supported"),
        ("six==1.17.0 --hash=sha256:abc", "pins.txt:1: --hash sha256:abc: not a sha256 hex digest"),
        ("six==1.17.0 --hash='sha256:abc", "pins.txt:1: `--hash='sha256:abc`: unbalanced quotes or a trailing backslash"),
        ("six>=1", "pins.txt:1: `six>=1` is not an exact pin (write name==version)"),
        ("six @ https://example.org/six.whl", "pins.txt:1: `six @ https://example.org/six.whl` is not an exact pin (write name==version)"),
    ] {
        assert_eq!(refusal(&format!("{line}\n")), expected, "{line}");
    }
    // Quoted option values are unquoted as pip's shlex.split does.
    let found = pins(&format!("six==1.17.0 --hash 'sha256:{DIGEST}'\n"));
    assert_eq!(found[0].hashes, [DIGEST]);
}

/// The files in fixtures/requirements were written by the tools themselves (the commands
/// are in their first lines), comments, `# via` lines, hashes and markers included.
#[test]
fn reads_what_pip_compile_and_uv_pip_compile_write() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/requirements");
    let expected = [
        "blinker==1.9.0",
        "click==8.5.1",
        "flask==3.0.3",
        "itsdangerous==2.2.0",
        "jinja2==3.1.6",
        "markupsafe==3.0.4",
        "pyyaml==6.0.1",
        "tqdm==4.66.4",
        "werkzeug==3.1.9",
    ];
    for file in ["pip-compile.txt", "uv-compile.txt"] {
        let all = load(&fixtures.join(file)).unwrap();
        let found = all.for_target(&linux_311()).unwrap();
        assert_eq!(names(&found), expected, "{file}");
        let flask = found.iter().find(|pin| pin.name == "flask").unwrap();
        assert_eq!(
            flask.hashes,
            [
                "34e815dfaa43340d1d15a5c3a02b8476004037eb4840b34910c6e21679d288f3",
                "ceb27b0af3823ea2737928a4d99d125a06175b8512c445cbd9a9ce200ef76842"
            ],
            "{file}"
        );
        assert!(found.iter().all(|pin| !pin.hashes.is_empty()), "{file}");
        assert_eq!(flask.file, Path::new(file));
    }
    let windows = MarkerEnvironment::try_from(pep508_rs::MarkerEnvironmentBuilder {
        implementation_name: "cpython",
        implementation_version: "3.11.9",
        os_name: "nt",
        platform_machine: "AMD64",
        platform_python_implementation: "CPython",
        platform_release: "10",
        platform_system: "Windows",
        platform_version: "10.0.19045",
        python_full_version: "3.11.9",
        python_version: "3.11",
        sys_platform: "win32",
    })
    .unwrap();
    let on_windows = load(&fixtures.join("uv-compile.txt"))
        .unwrap()
        .for_target(&windows)
        .unwrap();
    assert!(names(&on_windows).contains(&"colorama==0.4.6".to_string()));
}
