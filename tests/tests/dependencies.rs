//! What each Lambda binary links, from `cargo tree` on the lock file: one
//! HTTP and TLS stack (hyper 1, rustls 0.23), no SSO client, no DynamoDB
//! Streams client, and no other function crate. The operator CLI links no
//! function crate either. A feature default turned back on in `Cargo.toml`
//! fails here, not in a bigger bootstrap and a slower cold start.

use std::process::Command;

const FUNCTIONS: [&str; 4] = ["authorizer", "ingest", "log-processor", "quota-sync"];

/// The packages of `package`'s normal dependency tree (`name vX.Y.Z`),
/// built alone as `cargo lambda build --bin` builds it (no workspace
/// feature unification with the CLI).
fn normal_tree(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .unwrap_or_else(|e| panic!("running cargo tree: {e}"));
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut packages: Vec<String> = text
        .lines()
        .map(|l| {
            let mut words = l.split_whitespace();
            format!(
                "{} {}",
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default()
            )
        })
        .collect();
    packages.sort();
    packages.dedup();
    packages
}

fn versions_of<'a>(tree: &'a [String], name: &str) -> Vec<&'a str> {
    tree.iter()
        .filter_map(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .collect()
}

#[test]
fn each_function_links_one_http_and_tls_stack_and_no_other_function() {
    for function in FUNCTIONS {
        let tree = normal_tree(function);
        assert!(
            tree.iter().any(|p| p.starts_with("aws-sdk-dynamodb ")),
            "{function}: the tree was not read: {tree:?}"
        );
        for (name, major) in [("hyper", "v1."), ("rustls", "v0.23."), ("h2", "v0.4.")] {
            let versions = versions_of(&tree, name);
            assert!(
                !versions.is_empty() && versions.iter().all(|v| v.starts_with(major)),
                "{function} links {name} {versions:?}: only {major}x is wanted"
            );
        }
        // (name, version prefix; "" for any version)
        for (name, version) in [
            ("ring", ""),
            ("hyper-rustls", "v0.24."),
            ("aws-sdk-sso", ""),
            ("aws-sdk-ssooidc", ""),
            ("aws-sdk-dynamodbstreams", ""),
        ] {
            let found = versions_of(&tree, name);
            assert!(
                !found.iter().any(|v| v.starts_with(version)),
                "{function} links {name} {found:?}"
            );
        }
        for other in FUNCTIONS.iter().filter(|f| **f != function) {
            assert!(
                !tree.iter().any(|p| p.starts_with(&format!("{other} "))),
                "{function} depends on the function crate {other}"
            );
        }
    }
}

#[test]
fn the_operator_cli_links_no_function_crate() {
    let tree = normal_tree("tollgate");
    assert!(tree.iter().any(|p| p.starts_with("tollgate-store ")));
    for function in FUNCTIONS {
        assert!(
            !tree.iter().any(|p| p.starts_with(&format!("{function} "))),
            "the CLI depends on {function}"
        );
    }
    // SSO profiles are for people at a terminal: the CLI keeps them.
    assert!(tree.iter().any(|p| p.starts_with("aws-sdk-sso ")));
}
