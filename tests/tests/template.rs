//! `template.yaml` and `shared/store` describe the same tables, so the CLI's
//! local tables and the deployed ones cannot drift.

use serde_yaml::Value;
use tollgate_store::TABLES;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

fn strings(v: &Value, field: &str) -> Vec<(String, String)> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{field} is not a list"))
        .iter()
        .map(|e| {
            let name = e["AttributeName"].as_str().unwrap_or_default().to_owned();
            let other = e[field].as_str().unwrap_or_default().to_owned();
            (name, other)
        })
        .collect()
}

#[test]
fn the_template_tables_match_the_store_specs() {
    let t = template();
    for spec in TABLES {
        let resource = &t["Resources"][spec.logical_id];
        assert_eq!(
            resource["Type"].as_str(),
            Some("AWS::DynamoDB::Table"),
            "{}",
            spec.logical_id
        );
        let p = &resource["Properties"];
        assert_eq!(
            p["BillingMode"].as_str(),
            Some("PAY_PER_REQUEST"),
            "{} billing",
            spec.logical_id
        );

        let mut keys = vec![(spec.hash_key.to_owned(), "HASH".to_owned())];
        let mut attrs = vec![(spec.hash_key.to_owned(), "S".to_owned())];
        if let Some(range) = spec.range_key {
            keys.push((range.to_owned(), "RANGE".to_owned()));
            attrs.push((range.to_owned(), "S".to_owned()));
        }
        for index in spec.indexes {
            attrs.push((index.hash_key.to_owned(), "S".to_owned()));
            attrs.push((index.range_key.to_owned(), "N".to_owned()));
            let gsi = p["GlobalSecondaryIndexes"]
                .as_sequence()
                .and_then(|l| {
                    l.iter()
                        .find(|g| g["IndexName"].as_str() == Some(index.name))
                })
                .unwrap_or_else(|| panic!("{}: no index {}", spec.logical_id, index.name));
            assert_eq!(
                strings(&gsi["KeySchema"], "KeyType"),
                [
                    (index.hash_key.to_owned(), "HASH".to_owned()),
                    (index.range_key.to_owned(), "RANGE".to_owned())
                ],
                "{} index {}",
                spec.logical_id,
                index.name
            );
            assert_eq!(
                gsi["Projection"]["ProjectionType"].as_str(),
                Some("KEYS_ONLY")
            );
        }
        assert_eq!(
            strings(&p["KeySchema"], "KeyType"),
            keys,
            "{} keys",
            spec.logical_id
        );
        assert_eq!(
            strings(&p["AttributeDefinitions"], "AttributeType"),
            attrs,
            "{} attributes",
            spec.logical_id
        );

        let ttl = &p["TimeToLiveSpecification"];
        assert_eq!(
            ttl["AttributeName"].as_str(),
            spec.ttl_attribute,
            "{} ttl",
            spec.logical_id
        );
        assert_eq!(
            ttl["Enabled"].as_bool(),
            spec.ttl_attribute.map(|_| true),
            "{} ttl enabled",
            spec.logical_id
        );

        let stream = p["StreamSpecification"]["StreamViewType"].as_str();
        assert_eq!(
            stream,
            spec.stream.then_some("NEW_AND_OLD_IMAGES"),
            "{} stream",
            spec.logical_id
        );
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
            Some(true),
            "{} point-in-time recovery",
            spec.logical_id
        );
    }
}

#[test]
fn every_function_is_a_cargo_lambda_build_of_a_workspace_binary() {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    let mut binaries: Vec<String> = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|r| {
            assert_eq!(
                r["Metadata"]["BuildMethod"].as_str(),
                Some("rust-cargolambda")
            );
            r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .expect("Binary")
                .to_owned()
        })
        .collect();
    binaries.sort();
    assert_eq!(
        binaries,
        ["authorizer", "ingest", "log-processor", "quota-sync"]
    );
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(
        t["Parameters"]["Architecture"]["Default"].as_str(),
        Some("arm64")
    );
}

#[test]
fn no_policy_grants_every_action() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template");
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        assert!(
            !(l.starts_with("Action:")
                && (l.contains("\"*\"") || l.contains(":*") || l.ends_with(" *"))),
            "line {}: a wildcard action: {l}",
            i + 1
        );
        assert!(
            !l.starts_with("Resource: \"*\"") && l != "Resource: '*'",
            "line {}: a wildcard resource",
            i + 1
        );
    }
}

/// quota-sync's only write to a peer region is `UsageStore::put_replica`, a
/// conditional `UpdateItem` (its costs test counts the operations it sends):
/// the peer statement grants that and nothing else.
#[test]
fn quota_sync_may_only_update_peer_usage_items() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template");
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains("Sid: CopyToPeerRegions"));
    assert!(lines.next().is_some(), "no CopyToPeerRegions statement");
    let action = lines
        .map(str::trim)
        .find(|l| l.starts_with("Action:"))
        .expect("an Action");
    assert_eq!(action, "Action: [dynamodb:UpdateItem]");
}

#[test]
fn the_access_log_format_is_the_one_the_log_processor_parses() {
    let t = template();
    let format = t["Resources"]["MeteredApi"]["Properties"]["AccessLogSetting"]["Format"]
        .as_str()
        .expect("an access log format");
    assert_eq!(format, log_processor::line::ACCESS_LOG_FORMAT);
}
