//! YAML tricks in metadata.yaml and configuration.yaml, in bundles whose manifest agrees
//! (recomputed), so the YAML rules are what refuses them.

use super::{derived, refused, Case};

/// The billion laughs: nine levels of ten aliases each.
fn alias_bomb() -> String {
    let mut text = String::from("lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..9 {
        let previous = format!("*lol{}", level - 1);
        let row = [previous.as_str(); 10].join(", ");
        text.push_str(&format!("lol{level}: &lol{level} [{row}]\n"));
    }
    text
}

/// A list whose first item is anchored and then aliased `count` times.
fn aliased_list(count: usize) -> String {
    format!("[&item debug{}]", ", *item".repeat(count))
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    // Per file: a field holding a list of strings (and its path) and one holding a string, where the
    // tricks go so that the schema reads them rather than refusing an unknown field.
    for (file, prefix, list_path, list_field, string_field) in [
        (
            "metadata.yaml",
            "metadata",
            "system.packages",
            "  packages: []",
            "summary: A small greeting web service, the example app of pyapp",
        ),
        (
            "configuration.yaml",
            "configuration",
            "fields[3].choices",
            "    choices: [debug, info, warning, error]",
            "file-format: yaml",
        ),
    ] {
        let (list_key, _) = list_field.split_once(": ").expect("key: value");
        let (string_key, _) = string_field.split_once(": ").expect("key: value");
        let append = |extra: String| {
            derived(move |draft| {
                let entry = draft.entry(file);
                entry.data.extend_from_slice(extra.as_bytes());
            })
        };
        let replace = |from: &str, to: String| {
            derived(|draft| {
                draft.edit(file, from, &to);
            })
        };
        let name = |case: &str| format!("{prefix}-{case}");
        cases.push(refused(
            name("yaml-alias-bomb"),
            replace(list_field, format!("{list_key}: {}", aliased_list(150))),
            format!(
                "{file}:{}: document is too large or too deeply nested once aliases are expanded",
                line_of(file, list_field)
            ),
        ));
        // The classic bomb is refused before any alias is expanded: its anchors are not
        // fields of the schema.
        cases.push(refused(
            name("yaml-billion-laughs"),
            append(alias_bomb()),
            "lol0: unknown field",
        ));
        let padding = format!("# {}\n", "x".repeat(1 << 20));
        let size = super::bundle::Draft::base().data(file).len() + padding.len();
        cases.push(refused(
            name("yaml-too-large"),
            append(padding),
            format!("entry \"{file}\" is {size} bytes, more than the 1048576 allowed here"),
        ));
        cases.push(refused(
            name("yaml-duplicate-key"),
            append("format: 1\n".to_owned()),
            "format: duplicate key",
        ));
        cases.push(refused(
            name("yaml-unknown-field"),
            append("run-as: root\n".to_owned()),
            "run-as: unknown field (known fields: format, ",
        ));
        cases.push(refused(
            name("yaml-two-documents"),
            append("---\nformat: 1\n".to_owned()),
            "only one YAML document is allowed",
        ));
        cases.push(refused(
            name("yaml-custom-tag"),
            replace(
                string_field,
                format!("{string_key}: !!python/object/apply:os.system [id]"),
            ),
            format!("{string_key}: unsupported tag `!!python/object/apply:os.system`"),
        ));
        // Refused at its second level, where the schema wants a string, long before the
        // parser's depth limit.
        cases.push(refused(
            name("yaml-deep-nesting"),
            replace(
                list_field,
                format!("{list_key}: {}{}", "[".repeat(40), "]".repeat(40)),
            ),
            format!("{list_path}[0]: expected string scalar"),
        ));
        cases.push(refused(
            name("yaml-not-utf8"),
            derived(|draft| draft.entry(file).data.extend_from_slice(b"# \xff\xfe\n")),
            format!("{file} is not UTF-8"),
        ));
        cases.push(refused(
            name("yaml-format-2"),
            replace("format: 1", "format: 2".to_owned()),
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
        "services[0].<<: YAML merge keys are not allowed",
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

/// The 1-based line of the base bundle's `file` that holds `text`.
fn line_of(file: &str, text: &str) -> usize {
    let content =
        String::from_utf8(super::bundle::Draft::base().data(file).to_vec()).expect("utf-8");
    let at = content.find(text).expect("text in file");
    content[..at].lines().count() + 1
}
