//! The layers of the host, checked: every module of `host/src` imports (`crate::…`) only from
//! modules of lower layers, so the import graph has no cycle; `weir-core` depends on no Wasm
//! engine, Kafka client or storage engine; and no function of `host/src` is longer than one can
//! hold in one's head. The table below is the one docs/ARCHITECTURE.md shows; a new module must
//! be placed in it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The host's modules, lowest layer first. A module may import from modules of lower layers
/// only: not upwards, not sideways (modules of one layer know nothing of each other).
const LAYERS: &[&[&str]] = &[
    // Foundations: the pipeline file, the host's own files, counters, panics kept in.
    &["config", "contained", "protected", "metrics"],
    // What runs on them: built-in plugin bytes, restart strategies, keyed state.
    &["builtin", "restart", "keyed"],
    // The checkpoint store.
    &["state"],
    // The runtime: subtasks, channels, barriers, the coordinator. No Wasm, no Kafka.
    &["runtime"],
    // Side by side above the runtime: Wasm plugins, native connectors, benchmark nodes.
    &["plugin", "connector", "bench"],
    // Job assembly: the graph names plugins and connectors and makes the runtime's job.
    &["graph", "swap"],
    // Around a running job: checkpoints and savepoints, sink outputs, the live view.
    &["checkpoint", "outputs", "live"],
    // The job's HTTP server; the supervisor of a job's attempts.
    &["http", "supervisor"],
    // The commands.
    &["cli"],
];

/// Crates weir-core must never depend on, directly or not.
const NOT_IN_CORE: &[&str] = &["wasmtime", "rdkafka", "sled", "redb"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `host/src` belongs to (`None` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib" && name != "main").then_some(name)
}

/// Code without its `//` comments (doc comments name modules freely).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module `code` names after `crate::`, also inside `crate::{a, b::c}`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        found.insert(ident(&group[i..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

#[test]
fn host_modules_import_only_from_lower_layers() {
    let layer: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, mods)| mods.iter().map(move |m| (*m, i)))
        .collect();
    let src = repo().join("host/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let Some(from) = module_of(&src, file) else {
            continue;
        };
        let Some(&from_layer) = layer.get(from.as_str()) else {
            wrong.push(format!("host/src/{from} is in no layer: add it to LAYERS"));
            continue;
        };
        let code = without_comments(&std::fs::read_to_string(file).unwrap());
        for to in imports(&code) {
            if to == from {
                continue;
            }
            match layer.get(to.as_str()) {
                Some(&to_layer) if to_layer < from_layer => {}
                Some(_) => wrong.push(format!(
                    "{} imports crate::{to}, which is not in a lower layer than `{from}`",
                    file.strip_prefix(repo()).unwrap_or(file).display()
                )),
                None => wrong.push(format!(
                    "{} imports crate::{to}, a module in no layer",
                    file.display()
                )),
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
fn the_checker_sees_grouped_and_nested_imports() {
    let code = "use crate::{graph::Node, plugin::{A, B}, runtime};\nlet x = crate::keyed::f();";
    let found: Vec<String> = imports(code).into_iter().collect();
    assert_eq!(found, ["graph", "keyed", "plugin", "runtime"]);
}

/// The packages weir-core pulls in, from Cargo.lock (what `cargo tree -p weir-core` prints).
fn core_closure() -> BTreeSet<String> {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in lock.split("[[package]]").skip(1) {
        let name = package
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|n| n.strip_suffix('"'))
            .unwrap()
            .to_owned();
        let list: Vec<String> = package
            .split("dependencies = [")
            .nth(1)
            .map(|d| {
                d.split(']')
                    .next()
                    .unwrap()
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix('"'))
                    .map(|l| l.split([' ', '"']).next().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        deps.entry(name).or_default().extend(list);
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec!["weir-core".to_owned()];
    while let Some(p) = todo.pop() {
        if seen.insert(p.clone()) {
            todo.extend(deps.get(&p).into_iter().flatten().cloned());
        }
    }
    seen
}

#[test]
fn weir_core_knows_no_engine_broker_or_store() {
    let closure = core_closure();
    assert!(closure.contains("weir-batch"), "{closure:?}");
    for banned in NOT_IN_CORE {
        assert!(
            !closure
                .iter()
                .any(|p| p == banned || p.starts_with(&format!("{banned}-"))),
            "weir-core depends on {banned}: {closure:?}"
        );
    }
    let mut files = Vec::new();
    rust_files(&repo().join("core/src"), &mut files);
    for file in files {
        let code = without_comments(&std::fs::read_to_string(&file).unwrap());
        assert!(
            !code.contains("weir_host"),
            "{} names the host",
            file.display()
        );
    }
}

/// The longest a function of `host/src` may be, in lines.
const MAX_FUNCTION_LINES: usize = 120;

/// `line` with string and char literals emptied and its `//` comment cut, so the braces left
/// are the code's.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            '\'' => {
                // A char literal ('{', '\'') or a lifetime ('a).
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') {
                    // An escape ('\n', '\'', '\u{1b}'): up to its closing quote.
                    chars.next();
                    chars.next();
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                    }
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.nth(1);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// (lines, name, first line) of every function in `text`.
fn functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = code_of(line);
        let Some(at) = code.find("fn ") else { continue };
        let head = code[..at].trim();
        let is_fn = head.is_empty()
            || head.split_whitespace().all(|w| {
                matches!(w, "pub" | "async" | "const" | "unsafe") || w.starts_with("pub(")
            });
        if !is_fn {
            continue;
        }
        let name: String = code[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened) = (0i32, false);
        for (j, l) in lines.iter().enumerate().skip(i) {
            let code = code_of(l);
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if !opened && code.trim_end().ends_with(';') {
                break;
            }
            if opened && depth == 0 {
                found.push((j - i + 1, name.clone(), i + 1));
                break;
            }
        }
    }
    found
}

#[test]
fn no_host_function_is_longer_than_it_should_be() {
    let src = repo().join("host/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut long = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, name, line) in functions(&text) {
            if n > MAX_FUNCTION_LINES {
                long.push(format!("{}:{line} `{name}`: {n} lines", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them):\n{}",
        long.join("\n")
    );
}

#[test]
fn function_lengths_are_counted_by_their_braces() {
    let text = "fn a() {\n    let s = \"}\";\n    let c = '{';\n}\n\npub(crate) async fn b<'x>(v: &'x str) -> usize {\n    v.len() // }\n}\nfn decl();\n";
    let found = functions(text);
    assert_eq!(found, [(4, "a".to_string(), 1), (3, "b".to_string(), 6)]);
}
