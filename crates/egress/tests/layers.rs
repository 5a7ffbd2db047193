//! The crate graph goes one way: each crate may depend only on those below it, and nothing below
//! the API knows about HTTP. Cargo already refuses cycles; this keeps upward and HTTP edges out.

use std::path::Path;

/// The workspace crates, lowest first.
const LAYERS: &[&str] = &[
    "egress-core",
    "egress-store",
    "egress-storage",
    "egress-engine",
    "egress-api",
    "egress",
];

/// Crates that serve HTTP; only the API and the binary may use them.
const HTTP: &[&str] = &["axum", "hyper", "hyper-util", "tower", "tower-http"];

/// The names in a manifest's `[dependencies]` table (not dev or build dependencies).
fn dependencies(crate_dir: &str) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap();
            names.push(name.to_string());
        }
    }
    assert!(
        !names.is_empty(),
        "{} lists no dependencies",
        manifest.display()
    );
    names
}

#[test]
fn each_crate_depends_only_on_lower_layers_and_only_the_api_on_http() {
    for (level, name) in LAYERS.iter().enumerate() {
        let dir = name.strip_prefix("egress-").unwrap_or("egress");
        let deps = dependencies(dir);
        for dep in &deps {
            if let Some(dep_level) = LAYERS.iter().position(|l| l == dep) {
                assert!(
                    dep_level < level,
                    "{name} depends on {dep}, which is not below it"
                );
            }
        }
        if level < LAYERS.iter().position(|l| *l == "egress-api").unwrap() {
            for http in HTTP {
                assert!(!deps.iter().any(|d| d == http), "{name} depends on {http}");
            }
        }
    }
}

/// `egress export` and `egress import` are clients of the public API: they use no server crate,
/// so what they do against Egress they do against CAVATICA.
#[test]
fn the_client_commands_depend_on_no_server_crate() {
    let deps = dependencies("cli");
    for dep in LAYERS.iter().chain(HTTP) {
        assert!(
            !deps.iter().any(|d| d == dep),
            "egress-cli depends on {dep}"
        );
    }
}
