//! The layer rule, checked: no module imports a module above it (see the crate docs' table),
//! and the engine stays free of runtimes and protobuf.
//!
//! The test reads every `src/**/*.rs` file, finds each `crate::m` path (also inside
//! `use crate::{a, b::c}` groups, and `super::` paths that climb out to the crate root) and
//! fails naming the file, the line and the import when `m` sits above the file's own module.
//! Test code is held to the same rule: a fixture from a higher layer hides a dependency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Each top-level module's layer: a module may use its own layer and those below. Modules of
/// one layer may use each other.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("account", 0),
    // Metrics primitives: atomics and the exposition format, used from the sidecar up.
    ("observe", 0),
    ("jose", 1),
    ("policy", 2),
    ("authz", 3),
    ("directory", 4),
    ("snapshot", 5),
    ("sts", 6),
    // What every process needs below its domain: bounded connections, TLS files and
    // identities, logs and traces.
    ("net", 7),
    ("tls", 7),
    ("telemetry", 7),
    ("sync", 8),
    ("sidecar", 8),
    ("control_plane", 8),
    ("client", 8),
    ("grpc", 9),
    ("http", 9),
    // The command line and what only it runs (the load generator, the vector runner).
    ("cli", 10),
    ("loadgen", 10),
    ("simulate", 10),
    // Generated protobuf types: checked by `PROTO_USERS` below, not by rank.
    ("proto", 10),
    // This check itself.
    ("layers", 10),
];

/// The only modules that may name `crate::proto`: the edges and the stream ends.
const PROTO_USERS: &[&str] = &["grpc", "http", "sync", "control_plane", "cli", "loadgen"];

/// Modules that must stay synchronous and free of transport types.
const ENGINE: &[&str] = &[
    "error",
    "account",
    "jose",
    "policy",
    "authz",
    "directory",
    "snapshot",
    "sts",
];

/// What the engine must not mention.
const ENGINE_FORBIDDEN: &[&str] = &["tokio", "tonic", "axum", "moka", "prost"];

/// Known back-imports, as `(file, imported module, reason)`: none. An entry must match
/// something, so a fixed one has to be removed.
const ALLOWED: &[(&str, &str, &str)] = &[];

fn layer(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, rank)| *rank)
}

/// One use of another top-level module.
#[derive(Debug)]
struct Import {
    file: String,
    line: usize,
    target: String,
    text: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's module path below `src/`: `src/sts/jwt/tests.rs` is `["sts", "jwt", "tests"]`,
/// `src/sts.rs` is `["sts"]`, `src/lib.rs` is `[]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "lib" | "main" | "mod") {
            parts.push(stem.to_owned());
        }
    }
    parts
}

/// The line without its `//` comment (doc comments included). A `//` inside a string is
/// recognised by counting quotes, which is enough for this code base's one-line strings.
fn code_of(line: &str) -> &str {
    let mut in_string = false;
    let mut escaped = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn identifier_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first identifiers of the members of a `{...}` group starting at `text[0] == '{'`,
/// and how many characters the group spans (it may continue on later lines).
fn group_heads(text: &str) -> (Vec<String>, Option<usize>) {
    let mut depth = 0usize;
    let mut heads = Vec::new();
    let mut expect_head = false;
    for (i, c) in text.char_indices() {
        match c {
            '{' => {
                depth += 1;
                expect_head = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (heads, Some(i));
                }
            }
            ',' if depth == 1 => expect_head = true,
            c if expect_head && (c.is_ascii_alphabetic() || c == '_') => {
                heads.push(identifier_at(&text[i..]).to_owned());
                expect_head = false;
            }
            _ => {}
        }
    }
    (heads, None)
}

/// Every top-level module named by `file`'s code, with its line.
fn imports(root: &Path, file: &Path) -> Vec<Import> {
    let relative = file.strip_prefix(root.join("src")).unwrap();
    let shown = format!("src/{}", relative.to_string_lossy());
    let depth = module_path(relative).len();
    let source = std::fs::read_to_string(file).unwrap();
    let code: Vec<&str> = source.lines().map(code_of).collect();
    let mut found = Vec::new();
    let mut push = |line: usize, target: &str| {
        found.push(Import {
            file: shown.clone(),
            line: line + 1,
            target: target.to_owned(),
            text: source.lines().nth(line).unwrap_or("").trim().to_owned(),
        });
    };
    for (n, line) in code.iter().enumerate() {
        let mut rest = *line;
        while let Some(at) = rest.find("crate::") {
            let preceded = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let after = &rest[at + "crate::".len()..];
            if !preceded {
                if after.starts_with('{') {
                    // The group may span lines: join the rest of the file from here.
                    let joined = std::iter::once(after)
                        .chain(code.iter().skip(n + 1).copied())
                        .collect::<Vec<_>>()
                        .join("\n");
                    for head in group_heads(&joined).0 {
                        push(n, &head);
                    }
                } else {
                    push(n, identifier_at(after));
                }
            }
            rest = after;
        }
        // `super::super::x` from `src/a/b.rs` climbs to the root and names `x`.
        let mut rest = *line;
        while let Some(at) = rest.find("super::") {
            let chain = &rest[at..];
            let mut climbs = 0;
            let mut tail = chain;
            while let Some(next) = tail.strip_prefix("super::") {
                climbs += 1;
                tail = next;
            }
            if climbs == depth && climbs > 0 {
                if tail.starts_with('{') {
                    for head in group_heads(tail).0 {
                        push(n, &head);
                    }
                } else {
                    push(n, identifier_at(tail));
                }
            }
            rest = &chain["super::".len()..];
        }
    }
    found
}

/// The runtime and transport crates a line of code names, as whole words.
fn forbidden_in_engine(code: &str) -> Vec<&'static str> {
    ENGINE_FORBIDDEN
        .iter()
        .copied()
        .filter(|word| {
            code.match_indices(word).any(|(at, _)| {
                let before = code[..at].chars().next_back();
                let after = code[at + word.len()..].chars().next();
                !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .collect()
}

fn violations(root: &Path) -> (Vec<String>, Vec<(&'static str, &'static str)>) {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut problems = Vec::new();
    let mut used_allowances = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(root.join("src")).unwrap();
        let Some(own) = module_path(relative).first().cloned() else {
            continue; // lib.rs and main.rs sit above everything
        };
        let Some(own_layer) = layer(&own) else {
            problems.push(format!(
                "src/{}: module `{own}` has no layer: add it to LAYERS and the crate docs",
                relative.display()
            ));
            continue;
        };
        for import in imports(root, file) {
            if import.target == own || import.target.is_empty() {
                continue;
            }
            let why = if import.target == "proto" && !PROTO_USERS.contains(&own.as_str()) {
                format!("`{own}` may not use generated protobuf types")
            } else if let Some(target_layer) = layer(&import.target) {
                if target_layer <= own_layer || import.target == "proto" {
                    continue;
                }
                format!(
                    "`{own}` (layer {own_layer}) imports `{}` (layer {target_layer})",
                    import.target
                )
            } else {
                // `crate::SomeType` re-exported at the root, or a macro: not a module.
                continue;
            };
            if let Some((file, target, _)) = ALLOWED
                .iter()
                .find(|(file, target, _)| *file == import.file && *target == import.target)
            {
                used_allowances.insert((*file, *target), ());
                continue;
            }
            problems.push(format!(
                "{}:{}: {why}: `{}`",
                import.file, import.line, import.text
            ));
        }
        if ENGINE.contains(&own.as_str()) {
            let source = std::fs::read_to_string(file).unwrap();
            for (n, line) in source.lines().enumerate() {
                for word in forbidden_in_engine(code_of(line)) {
                    problems.push(format!(
                        "src/{}:{}: the engine module `{own}` mentions `{word}`: `{}`",
                        relative.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    let stale = ALLOWED
        .iter()
        .filter(|(file, target, _)| !used_allowances.contains_key(&(*file, *target)))
        .map(|(file, target, _)| (*file, *target))
        .collect();
    (problems, stale)
}

#[test]
fn no_import_runs_back_up_the_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (problems, stale) = violations(root);
    let mut report = String::new();
    for problem in &problems {
        writeln!(report, "{problem}").unwrap();
    }
    for (file, target) in &stale {
        writeln!(
            report,
            "{file}: the allowance for `{target}` is no longer needed: remove it from ALLOWED"
        )
        .unwrap();
    }
    assert!(report.is_empty(), "layer violations:\n{report}");
}

#[test]
fn every_top_level_module_has_a_layer_and_a_row_in_the_crate_docs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        let Some(name) = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
            .map(|rest| rest.trim_end_matches(';'))
        else {
            continue;
        };
        assert!(layer(name).is_some(), "module `{name}` has no layer");
        if name != "layers" {
            assert!(
                lib.contains(&format!(" | [`{name}`] | ")),
                "module `{name}` has no row in the crate docs' table"
            );
        }
    }
}

// The checker checks itself on small texts, so that it cannot pass by finding nothing.

#[test]
fn the_checker_finds_paths_groups_and_climbing_supers() {
    let dir = std::env::temp_dir().join(format!("iamlet-layers-{}", std::process::id()));
    let src = dir.join("src/snapshot");
    std::fs::create_dir_all(&src).unwrap();
    let file = src.join("probe.rs");
    std::fs::write(
        &file,
        "use crate::sts::jwt::Jwks; // crate::cli in a comment is not an import\n\
         use crate::{\n    policy::Timestamp,\n    sync::{TenantUpdate, Applier},\n};\n\
         fn f() { super::super::control_plane::x(); let s = \"// crate::cli\"; }\n\
         fn g() { super::store::y(); my_crate::sidecar::z(); }\n",
    )
    .unwrap();
    let found: Vec<(usize, String)> = imports(&dir, &file)
        .into_iter()
        .map(|i| (i.line, i.target))
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        found,
        [
            (1, "sts".to_owned()),
            (2, "policy".to_owned()),
            (2, "sync".to_owned()),
            (6, "cli".to_owned()),
            (6, "control_plane".to_owned()),
        ]
    );
}

#[test]
fn comments_are_not_code_but_strings_are() {
    assert_eq!(code_of("use crate::a; // crate::b"), "use crate::a; ");
    assert_eq!(code_of("/// crate::b"), "");
    assert_eq!(
        code_of(r#"let u = "https://x"; // y"#),
        r#"let u = "https://x"; "#
    );
    assert_eq!(code_of(r#"let q = "\"//"; x"#), r#"let q = "\"//"; x"#);
}

#[test]
fn runtime_crates_are_found_as_whole_words() {
    assert_eq!(forbidden_in_engine("use tokio::sync::watch;"), ["tokio"]);
    assert_eq!(forbidden_in_engine("#[tokio::test]"), ["tokio"]);
    assert_eq!(
        forbidden_in_engine("fn f(s: tonic::Status, m: moka::sync::Cache) {}"),
        ["tonic", "moka"]
    );
    assert_eq!(
        forbidden_in_engine("let x = prost::Message::encode(&m);"),
        ["prost"]
    );
    assert!(forbidden_in_engine("let tokionic = my_axum_like;").is_empty());
    assert!(forbidden_in_engine(code_of("// free of tokio")).is_empty());
}
