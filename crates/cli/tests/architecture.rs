//! The dependency rules ARCHITECTURE.md states, checked against `cargo metadata` (the resolved
//! graph, every feature) and the crates' sources:
//! - clients (`sirr-client`, `sirr-cli`, `sirr-bench`, `sirr-web`) and the server (`sirr-server`) never
//!   depend on each other; each depends only on the Sirr crates the map allows;
//! - `sirr-server` and `sirr-store` never use `sirr_proto::content`;
//! - `sirr-proto` and `sirr-crypto` do no IO (no IO crate below them, no IO in their code);
//! - `sirr-abuse` depends on no other Sirr crate.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workspace's resolved dependency graph: package name → names of its dependencies, normal
/// and build (dev-dependencies never reach a shipped binary).
fn graph() -> HashMap<String, BTreeSet<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph = HashMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].as_str() != Some("dev"))
            })
            .map(|d| names[d["pkg"].as_str().unwrap()].to_owned())
            .collect();
        graph.insert(names[node["id"].as_str().unwrap()].to_owned(), deps);
    }
    graph
}

/// Everything `package` depends on, directly or not.
fn below(graph: &HashMap<String, BTreeSet<String>>, package: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![package.to_owned()];
    while let Some(p) = todo.pop() {
        for d in graph.get(&p).unwrap_or_else(|| panic!("{p} is not in the graph")) {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

fn sirr_crates_below(graph: &HashMap<String, BTreeSet<String>>, package: &str) -> Vec<String> {
    below(graph, package)
        .into_iter()
        .filter(|d| d.starts_with("sirr-"))
        .collect()
}

#[test]
fn sirr_crates_depend_only_on_what_the_map_allows() {
    let g = graph();
    let allowed: &[(&str, &[&str])] = &[
        ("sirr-proto", &[]),
        ("sirr-crypto", &["sirr-proto"]),
        ("sirr-store", &["sirr-proto"]),
        ("sirr-abuse", &[]),
        (
            "sirr-server",
            &["sirr-abuse", "sirr-crypto", "sirr-proto", "sirr-store"],
        ),
        ("sirr-client", &["sirr-crypto", "sirr-proto"]),
        ("sirr-cli", &["sirr-client", "sirr-crypto", "sirr-proto"]),
        ("sirr-bench", &["sirr-client", "sirr-crypto", "sirr-proto"]),
        ("sirr-web", &["sirr-client", "sirr-crypto", "sirr-proto"]),
    ];
    let workspace: BTreeSet<String> = g.keys().filter(|k| k.starts_with("sirr-")).cloned().collect();
    let listed: BTreeSet<String> = allowed.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(workspace, listed, "every workspace crate has a rule here");
    for (package, may) in allowed {
        let got = sirr_crates_below(&g, package);
        let may: Vec<String> = may.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, may, "{package} depends on exactly these Sirr crates");
    }
    // The two sides, said once more in the words of the invariant.
    for client in ["sirr-client", "sirr-cli", "sirr-bench", "sirr-web"] {
        assert!(!below(&g, client).contains("sirr-server"), "{client} → server");
        assert!(!below(&g, "sirr-server").contains(client), "server → {client}");
    }
}

#[test]
fn protocol_and_crypto_have_no_io_crate_below_them() {
    let g = graph();
    let io = [
        "tokio",
        "mio",
        "socket2",
        "rusqlite",
        "libsqlite3-sys",
        "hyper",
        "reqwest",
        "tungstenite",
        "tokio-tungstenite",
        "axum",
    ];
    for package in ["sirr-proto", "sirr-crypto", "sirr-abuse"] {
        let deps = below(&g, package);
        let found: Vec<&str> = io.iter().copied().filter(|c| deps.contains(*c)).collect();
        assert!(found.is_empty(), "{package} pulls in IO crates: {found:?}");
    }
    // Positive control: the same check sees the client's IO.
    assert!(below(&g, "sirr-client").contains("tokio"));
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(sources(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
        }
    }
    out
}

/// The files under `crates/<krate>/src` whose code (comments aside) matches any `patterns`.
fn offending(krate: &str, patterns: &[&str]) -> Vec<String> {
    let src = root().join("crates").join(krate).join("src");
    let files = sources(&src);
    assert!(!files.is_empty(), "no sources under {}", src.display());
    files
        .into_iter()
        .filter_map(|(path, text)| {
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let hit = patterns.iter().find(|p| code.contains(*p))?;
            Some(format!("{}: {hit}", path.display()))
        })
        .collect()
}

/// How code names the content module: a path, or a `content` item in a grouped import.
const CONTENT: &[&str] = &[
    "sirr_proto::content",
    "proto::content",
    "{content",
    " content,",
    " content}",
];

#[test]
fn the_server_and_the_store_never_use_the_content_module() {
    for krate in ["server", "store"] {
        let hits = offending(krate, CONTENT);
        assert!(hits.is_empty(), "sirr-{krate} uses sirr_proto::content: {hits:?}");
    }
    // Positive control: the client, which does use it, is caught by the same search.
    assert!(!offending("client", CONTENT).is_empty());
}

/// What doing IO looks like in Rust source.
const IO: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "std::thread",
    "tokio::",
    "File::",
    "SystemTime::now",
    "Instant::now",
    "println!",
    "eprintln!",
];

#[test]
fn protocol_crypto_and_the_abuse_core_do_no_io() {
    for krate in ["proto", "crypto"] {
        let hits = offending(krate, IO);
        assert!(hits.is_empty(), "sirr-{krate} does IO: {hits:?}");
    }
    // The abuse engine's core (its binary and simulator are allowed a clock and files).
    let core = ["event.rs", "features.rs", "rules.rs", "model.rs", "engine.rs"];
    let hits: Vec<String> = offending("abuse", IO)
        .into_iter()
        .filter(|h| core.iter().any(|f| h.contains(&format!("/{f}:"))))
        .collect();
    assert!(hits.is_empty(), "the abuse core does IO: {hits:?}");
    // Positive control.
    assert!(!offending("client", IO).is_empty());
}

/// What reaching past the client's platform seams looks like: the clock, tasks, sockets and
/// SQLite of one platform. Only the native implementations may.
const PLATFORM: &[&str] = &[
    "SystemTime::now",
    "Instant::now",
    "tokio::spawn",
    "tokio::time",
    "tokio::task",
    "spawn_blocking",
    "tokio::net",
    "tokio_tungstenite",
    "rusqlite",
];

#[test]
fn the_shared_client_code_uses_only_its_platform_seams() {
    // `native/` and the SQLite store are the native platform; everything else runs in the
    // browser too and reaches time, tasks, sockets and storage through `platform` and `store`.
    let native = |h: &String| h.contains("/src/native/") || h.contains("/src/store/sqlite.rs:");
    let hits: Vec<String> = offending("client", PLATFORM)
        .into_iter()
        .filter(|h| !native(h))
        .collect();
    assert!(
        hits.is_empty(),
        "shared client code reaches past its seams: {hits:?}"
    );
    // Positive control: the native implementations are caught by the same search.
    assert!(offending("client", PLATFORM).iter().any(native));
}
