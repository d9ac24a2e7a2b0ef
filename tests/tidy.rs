//! Tidy checks that keep the architecture true where the compiler cannot (as rust-analyzer's `xtask/src/tidy.rs`
//! does): every folder of the workspace is walked recursively, so a file added deep in a module is checked too.
//!
//! The compiler keeps the big boundary: the engine is a crate whose dependencies cannot reach an async runtime, a
//! transport, a wire format or a clock. These tests keep that dependency list short, and check what no import
//! shows: a clock read or console output in the engine, wire types outside the edge, side doors between the two
//! transports, and the lints that refuse `unwrap`/`expect` outside tests.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// The workspace root (this package is the root package).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, recursively, with its text; relative paths, sorted.
fn sources(dir: &str) -> Vec<(String, String)> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join(dir), &mut files);
    files.sort();
    let shown = |p: &Path| p.strip_prefix(root()).unwrap().display().to_string();
    files.into_iter().map(|p| (shown(&p), fs::read_to_string(&p).unwrap())).collect()
}

/// The code of `text`, without comment lines (doc comments name things the code does not use).
fn code(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The names in a manifest's `[dependencies]` table.
fn dependencies(manifest: &str) -> Vec<String> {
    let text = fs::read_to_string(root().join(manifest)).unwrap();
    let table = text.split("\n[dependencies]\n").nth(1).unwrap_or_else(|| panic!("{manifest} has [dependencies]"));
    let table = table.split("\n[").next().unwrap();
    table
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(['=', '.']).next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn the_walk_is_recursive() {
    let engine = sources("crates/alertstream-engine/src");
    for nested in ["window/mod.rs", "window/order_stats.rs", "window/tests.rs"] {
        assert!(engine.iter().any(|(p, _)| p.ends_with(nested)), "the walk finds {nested}");
    }
}

#[test]
fn the_engine_depends_only_on_what_a_pure_synchronous_engine_needs() {
    assert_eq!(dependencies("crates/alertstream-engine/Cargo.toml"), ["foldhash", "hashbrown", "thiserror"]);
    assert_eq!(dependencies("crates/alertstream-rules/Cargo.toml"), ["alertstream-engine", "thiserror", "toml"]);
}

#[test]
fn the_engine_and_the_rules_loader_read_no_clock_print_nothing_and_take_no_lock() {
    // Split so that this file does not match itself.
    let forbidden = [
        ["SystemTime::", "now"],
        ["Instant::", "now"],
        ["print", "ln!"],
        ["eprint", "ln!"],
        ["print", "!("],
        ["eprint", "!("],
        ["db", "g!("],
        ["Mut", "ex"],
        ["RwL", "ock"],
    ];
    for dir in ["crates/alertstream-engine/src", "crates/alertstream-rules/src"] {
        for (path, text) in sources(dir) {
            let code = code(&text);
            for [a, b] in forbidden {
                let word = format!("{a}{b}");
                assert!(
                    !code.contains(&word),
                    "{path} uses `{word}`: the engine takes time as data, logs nothing and holds nothing shared"
                );
            }
        }
    }
}

#[test]
fn wire_types_appear_only_at_the_edge() {
    let edge = [
        "src/convert.rs",
        "src/service.rs",
        "src/stream_loop.rs",
        "src/stream_codec.rs",
        "src/server.rs",
        "src/lib.rs",
        // A gRPC client: it speaks the wire types to a server (and remembers them to resume).
        "src/simulate/mod.rs",
        "src/simulate/resume.rs",
    ];
    for (path, text) in sources("src") {
        if edge.contains(&path.as_str()) {
            continue;
        }
        assert!(!code(&text).contains("pb::"), "{path} names wire types: convert them in src/convert.rs");
    }
}

#[test]
fn grpc_and_http_are_siblings_and_convert_imports_only_the_engine_and_the_wire_types() {
    for (path, text) in sources("src/http") {
        assert!(!code(&text).contains("service::"), "{path} reaches into the gRPC service");
    }
    let service = code(&fs::read_to_string(root().join("src/service.rs")).unwrap());
    assert!(!service.contains("crate::http"), "src/service.rs reaches into the HTTP endpoint");
    let convert = code(&fs::read_to_string(root().join("src/convert.rs")).unwrap());
    // The wire types: the generated `pb`, and the stream codec's decoded reading.
    for (at, _) in convert.match_indices("crate::") {
        let wire = ["crate::pb", "crate::stream_codec::InboundReading"];
        assert!(wire.iter().any(|w| convert[at..].starts_with(w)), "src/convert.rs imports {}", &convert[at..at + 20]);
    }
    for line in convert.lines().filter(|l| l.starts_with("use ")) {
        let root = line["use ".len()..].split("::").next().unwrap();
        assert!(["std", "alertstream_engine", "crate"].contains(&root), "src/convert.rs imports `{root}`");
    }
}

#[test]
fn no_unwrap_or_expect_outside_tests() {
    // clippy refuses them (allowed in tests by clippy.toml); these lines keep the lint on in every crate root.
    let lint = "#![warn(clippy::unwrap_used, clippy::expect_used";
    for root in
        ["src/lib.rs", "src/main.rs", "crates/alertstream-engine/src/lib.rs", "crates/alertstream-rules/src/lib.rs"]
    {
        let text = fs::read_to_string(self::root().join(root)).unwrap();
        assert!(text.contains(lint), "{root} lacks `{lint}`");
    }
}

#[test]
fn no_unbounded_channel_and_no_task_per_stream() {
    for (path, text) in sources("src") {
        assert!(!code(&text).contains("unbounded"), "{path} makes an unbounded channel: bound it and push back");
    }
    // A stream is one loop pulled by tonic's encoder: nothing is spawned per stream, so flow control reaches the client.
    let service = code(&fs::read_to_string(root().join("src/service.rs")).unwrap());
    assert!(!service.contains("spawn"), "src/service.rs spawns a task: a stream must be pulled, not pushed");
}

#[test]
fn time_comes_from_the_servers_clock() {
    // One wall-clock read in the product, in the clock itself: tests drive time with a manual clock.
    for (path, text) in sources("src") {
        if path == "src/clock.rs" {
            continue;
        }
        let code = code(&text);
        for word in [["SystemTime::", "now"], ["Instant::", "now"]].map(|[a, b]| format!("{a}{b}")) {
            assert!(!code.contains(&word), "{path} reads the wall clock (`{word}`): take the time from the Clock");
        }
    }
}
