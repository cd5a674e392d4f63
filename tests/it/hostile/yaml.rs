//! YAML tricks in metadata.yaml and configuration.yaml, in bundles whose manifest agrees
//! (recomputed), so the YAML rules are what refuses them.

use super::{derived, refused, Case};

/// The billion laughs: nine levels of ten aliases each.
fn alias_bomb() -> String {
    let mut text = String::from("lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..9 {
        let previous = format!("*lol{}", level - 1);
        let row = vec![previous.as_str(); 10].join(", ");
        text.push_str(&format!("lol{level}: &lol{level} [{row}]\n"));
    }
    text
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (file, prefix) in [
        ("metadata.yaml", "metadata"),
        ("configuration.yaml", "configuration"),
    ] {
        let append = |extra: String| {
            derived(move |draft| {
                let entry = draft.entry(file);
                entry.data.extend_from_slice(extra.as_bytes());
            })
        };
        let name = |case: &str| format!("{prefix}-{case}");
        cases.push(refused(
            name("yaml-alias-bomb"),
            append(alias_bomb()),
            format!("{file}:"),
        ));
        cases.push(refused(
            name("yaml-too-large"),
            append(format!("# {}\n", "x".repeat(1 << 20))),
            file,
        ));
        cases.push(refused(
            name("yaml-duplicate-key"),
            append("format: 1\n".to_owned()),
            "format: duplicate key",
        ));
        cases.push(refused(
            name("yaml-unknown-field"),
            append("run-as: root\n".to_owned()),
            "run-as: unknown field",
        ));
        cases.push(refused(
            name("yaml-two-documents"),
            append("---\nformat: 1\n".to_owned()),
            "only one YAML document is allowed",
        ));
        cases.push(refused(
            name("yaml-custom-tag"),
            append("extra: !!python/object/apply:os.system [id]\n".to_owned()),
            file,
        ));
        cases.push(refused(
            name("yaml-deep-nesting"),
            append(format!("deep: {}{}\n", "[".repeat(200), "]".repeat(200))),
            file,
        ));
        cases.push(refused(
            name("yaml-not-utf8"),
            derived(|draft| draft.entry(file).data.extend_from_slice(b"# \xff\xfe\n")),
            file,
        ));
        cases.push(refused(
            name("yaml-format-2"),
            derived(|draft| {
                draft.edit(file, "format: 1", "format: 2");
            }),
            format!("{file}: format 2 is newer than this tool supports (1)"),
        ));
    }
    cases.push(refused(
        "metadata-no-is-not-false",
        derived(|draft| {
            draft.metadata("pid-file: false", "pid-file: no");
        }),
        "services[0].pid-file: \"no\" is not a boolean",
    ));
    cases.push(refused(
        "metadata-string-for-an-integer",
        derived(|draft| {
            draft.metadata("workers: 2", "workers: two");
        }),
        "services[0].workers: \"two\" is not a valid integer",
    ));
    cases.push(refused(
        "metadata-merge-key",
        derived(|draft| {
            draft.metadata("  listen: port\n", "  <<: {listen: port}\n");
        }),
        "metadata.yaml",
    ));
    cases.push(refused(
        "configuration-yes-is-not-true",
        derived(|draft| {
            draft.edit("configuration.yaml", "required: true", "required: yes");
        }),
        "fields[0].required: \"yes\" is not a boolean",
    ));
    cases
}
