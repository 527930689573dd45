//! `scripts/deploy.sh --plan` (what `make deploy` would run, without
//! running it): one build for the architecture, one deploy per region from
//! that region's config-env, the same stage and architecture everywhere,
//! each region's peers the others; `--dry-run` executes no change set.

use std::process::Command;

fn plan(args: &[&str]) -> (bool, String, String, String) {
    let config = std::env::temp_dir().join(format!(
        "tollgate-deploy-plan-{}-{}.toml",
        std::process::id(),
        rand::random::<u32>()
    ));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/deploy.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("--plan")
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let toml = std::fs::read_to_string(&config).unwrap_or_default();
    let _ = std::fs::remove_file(&config);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        toml,
    )
}

/// The `[<region>.deploy.parameters]` section of the config, as key = value.
fn section(toml: &str, region: &str) -> Vec<(String, String)> {
    toml.lines()
        .skip_while(|l| *l != format!("[{region}.deploy.parameters]"))
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

fn value<'a>(section: &'a [(String, String)], key: &str) -> &'a str {
    section
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {section:?}"))
}

#[test]
fn three_regions_get_one_build_and_a_deploy_each_with_the_others_as_peers() {
    let regions = ["eu-central-1", "us-east-1", "ap-southeast-2"];
    let (ok, stdout, stderr, toml) = plan(&[
        "--regions",
        &regions.join(" "),
        "--stage",
        "prod",
        "--arch",
        "x86_64",
        "--backend-url",
        "https://api.example.com",
        "--param",
        "KinesisBatchSeconds=300",
        "--dry-run",
    ]);
    assert!(ok, "{stderr}");
    let commands: Vec<&str> = stdout.lines().collect();
    assert_eq!(commands.len(), 1 + regions.len(), "{stdout}");
    assert!(commands[0].starts_with("sam build "), "{}", commands[0]);
    assert!(commands[0].ends_with("--parameter-overrides Architecture=x86_64"));
    for (i, region) in regions.iter().enumerate() {
        let c = commands[1 + i];
        assert!(c.starts_with("sam deploy "), "{c}");
        assert!(c.contains(&format!("--config-env {region}")), "{c}");
        assert!(c.ends_with("--no-execute-changeset"), "a dry run: {c}");

        let s = section(&toml, region);
        assert_eq!(value(&s, "region"), *region);
        assert_eq!(value(&s, "stack_name"), "tollgate-prod");
        let overrides: Vec<&str> = value(&s, "parameter_overrides").split(' ').collect();
        let peers: Vec<&str> = regions.iter().copied().filter(|r| r != region).collect();
        assert_eq!(
            overrides,
            [
                "StageName=prod",
                "Architecture=x86_64",
                &format!("PeerRegions={}", peers.join(",")),
                "BackendUrl=https://api.example.com",
                "KinesisBatchSeconds=300",
            ],
            "{region}"
        );
    }
    assert!(
        toml.contains("[default.build.parameters]\nparameter_overrides = \"Architecture=x86_64\"")
    );
}

#[test]
fn one_region_has_no_peers_and_a_real_deploy_executes_its_change_set() {
    let (ok, stdout, stderr, toml) = plan(&["--regions", "eu-west-1"]);
    assert!(ok, "{stderr}");
    let commands: Vec<&str> = stdout.lines().collect();
    assert_eq!(commands.len(), 2, "{stdout}");
    assert!(!commands[1].contains("--no-execute-changeset"));
    let s = section(&toml, "eu-west-1");
    assert_eq!(
        value(&s, "parameter_overrides"),
        "StageName=prod Architecture=arm64 PeerRegions=none"
    );
}

#[test]
fn bad_plans_are_refused_with_a_reason() {
    for (args, reason) in [
        (vec!["--regions", ""], "name the regions"),
        (vec!["--regions", "eu-west-1 eu-west-1"], "listed twice"),
        (vec!["--regions", "Mars"], "not a region name"),
        (vec!["--regions", "eu-west-1", "--stage", "Prod"], "--stage"),
        (vec!["--regions", "eu-west-1", "--arch", "mips"], "--arch"),
        (
            vec!["--regions", "eu-west-1", "--param", "StageName=x"],
            "set by this script",
        ),
    ] {
        let (ok, stdout, stderr, _) = plan(&args);
        assert!(!ok, "{args:?} passed: {stdout}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "no commands for {args:?}");
    }
}
