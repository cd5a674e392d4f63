//! The layers of ARCHITECTURE.md, checked on the source: which crate depends on which, which
//! module of pyapp-install imports which, and that no module imports back up the stack or
//! round in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The repository root (the tests' own package is the workspace root).
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "rs"))
        .map(|entry| {
            let text = fs::read_to_string(entry.path()).unwrap();
            (entry.path().to_owned(), text)
        })
        .collect()
}

/// `text` without its `#[cfg(test)] mod tests` (tests may reach across layers).
fn without_tests(text: &str) -> &str {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "#[cfg(test)]" {
            let after = &text[offset + line.len()..];
            let item = after.lines().find(|line| !line.starts_with("#["));
            if item.is_some_and(|item| item.starts_with("mod tests")) {
                return &text[..offset];
            }
        }
        offset += line.len();
    }
    text
}

/// The crate-internal paths `text` names: `crate::engine::install` gives `engine::install`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for line in text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
    {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.insert(path.trim_end_matches(':').to_owned());
        }
    }
    paths
}

/// The top-level module of pyapp-install a source file belongs to: `engine`, `app`, …
fn layer_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_str().unwrap().trim_end_matches(".rs").to_owned()
}

/// What each layer of pyapp-install may import (besides itself).
const MAY_IMPORT: [(&str, &[&str]); 8] = [
    ("progress", &[]),
    ("app", &["progress"]),
    ("system", &["app", "progress"]),
    ("engine", &["app", "system", "progress"]),
    ("output", &["progress"]),
    // The management server: the engine's operations over HTTP, beside the command line
    // (it never sees a clap type, nor prints).
    ("server", &["engine", "app", "system", "progress"]),
    ("settings", &["cli", "engine", "app", "output", "server"]),
    (
        "commands",
        &[
            "cli", "settings", "engine", "app", "system", "output", "progress", "server",
        ],
    ),
];

#[test]
fn pyapp_install_modules_import_only_the_layers_below_them() {
    let src = repo().join("pyapp-install/src");
    let rules: BTreeMap<&str, &[&str]> = MAY_IMPORT.into_iter().collect();
    let mut wrong = Vec::new();
    for (file, text) in sources(&src) {
        let layer = layer_of(&src, &file);
        let Some(allowed) = rules.get(layer.as_str()) else {
            continue;
        };
        for path in crate_paths(without_tests(&text)) {
            let imported = path.split("::").next().unwrap();
            if imported != layer && !allowed.contains(&imported) {
                wrong.push(format!("{} imports crate::{path}", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn only_the_command_line_layers_know_clap_or_print() {
    let src = repo().join("pyapp-install/src");
    let mut wrong = Vec::new();
    for (file, text) in sources(&src) {
        let layer = layer_of(&src, &file);
        if ["cli", "commands", "main", "output", "settings"].contains(&layer.as_str()) {
            continue;
        }
        let code = without_tests(&text);
        for word in [
            "clap",
            "println!",
            "print!(",
            "eprintln!",
            "eprint!(",
            "Output",
        ] {
            let used = code
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .any(|line| line.contains(word));
            if used {
                wrong.push(format!("{} uses {word}", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The modules of `layer` (`system`, `app`, `engine`) and those of the same layer each
/// imports, as `system::units` → {`system::web`, …}.
fn module_graph(src: &Path, layer: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in sources(&src.join(layer)) {
        let relative = file.strip_prefix(src.join(layer)).unwrap();
        let module = relative.components().next().unwrap().as_os_str();
        let module = format!(
            "{layer}::{}",
            module.to_str().unwrap().trim_end_matches(".rs")
        );
        if module == format!("{layer}::mod") {
            continue;
        }
        let edges = graph.entry(module.clone()).or_default();
        for path in crate_paths(without_tests(&text)) {
            let mut parts = path.split("::");
            if parts.next() != Some(layer) {
                continue;
            }
            if let Some(other) = parts.next() {
                let other = format!("{layer}::{other}");
                if other != module {
                    edges.insert(other);
                }
            }
        }
    }
    graph
}

/// A cycle through `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_modules_of_a_layer_import_each_other_in_a_circle() {
    let src = repo().join("pyapp-install/src");
    for layer in ["app", "system", "engine", "server", "commands"] {
        let graph = module_graph(&src, layer);
        assert!(graph.len() > 1, "no modules found in {layer}/");
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "modules import each other in a circle: {}",
                cycle.join(" → ")
            );
        }
    }
}

#[test]
fn the_crates_depend_only_downwards_and_the_format_crate_starts_no_process() {
    // Each crate and the pyapp crates it may depend on.
    let allowed: [(&str, &[&str]); 6] = [
        ("pyapp-bundle", &[]),
        ("pyapp-fs", &[]),
        ("pyapp-venv", &["pyapp-bundle", "pyapp-fs"]),
        ("pyapp-cli", &["pyapp-bundle", "pyapp-fs", "pyapp-venv"]),
        (
            "pyapp-build",
            &["pyapp-bundle", "pyapp-cli", "pyapp-fs", "pyapp-venv"],
        ),
        (
            "pyapp-install",
            &["pyapp-bundle", "pyapp-cli", "pyapp-fs", "pyapp-venv"],
        ),
    ];
    for (name, may) in allowed {
        let manifest = fs::read_to_string(repo().join(name).join("Cargo.toml")).unwrap();
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .unwrap_or("")
            .split("\n[")
            .next()
            .unwrap_or("");
        for line in deps.lines() {
            let dep = line.split(['=', ' ', '.']).next().unwrap_or("");
            if dep.starts_with("pyapp-") {
                assert!(may.contains(&dep), "{name} depends on {dep}");
            }
        }
    }
    for (file, text) in sources(&repo().join("pyapp-bundle/src")) {
        let code = without_tests(&text);
        assert!(
            !code.contains("process::Command") && !code.contains("Command::new"),
            "{} starts a process: the format crate must not",
            file.display()
        );
    }
}

#[test]
fn only_the_server_starts_an_async_runtime() {
    // The plain command line must not pay for one: tokio, axum and maud stay in server/.
    let src = repo().join("pyapp-install/src");
    let mut wrong = Vec::new();
    for (file, text) in sources(&src) {
        if layer_of(&src, &file) == "server" {
            continue;
        }
        for word in ["tokio", "axum", "maud"] {
            if without_tests(&text).contains(word) {
                wrong.push(format!("{} uses {word}", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
