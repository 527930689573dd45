//! `template.yaml` and `shared/store` describe the same tables, so the CLI's
//! local tables and the deployed ones cannot drift.

use serde_yaml_ng::Value;
use tollgate_store::TABLES;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
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

// ------------------------------------------------------------------ helpers

/// The content of a value tagged `!tag` (`!GetAtt`, `!If`, ...).
fn tagged<'a>(v: &'a Value, tag: &str) -> &'a Value {
    match v {
        Value::Tagged(t) if t.tag == tag => &t.value,
        other => panic!("expected !{tag}, got {other:?}"),
    }
}

/// `!GetAtt X.Attr` as the string `X.Attr`.
fn get_att(v: &Value) -> &str {
    tagged(v, "GetAtt").as_str().expect("a GetAtt string")
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    let r = &t["Resources"][id];
    assert!(r.is_mapping(), "no resource {id}");
    r
}

/// Every policy statement of a SAM function, `!If` branches included.
fn statements(function: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for policy in function["Properties"]["Policies"]
        .as_sequence()
        .expect("Policies")
    {
        for s in policy["Statement"].as_sequence().expect("Statement") {
            match s {
                Value::Tagged(t) if t.tag == "If" => {
                    let branch = &t.value[1];
                    assert!(branch.is_mapping(), "an !If statement's first branch");
                    out.push(branch.clone());
                }
                s => out.push(s.clone()),
            }
        }
    }
    out
}

fn actions(statement: &Value) -> Vec<&str> {
    statement["Action"]
        .as_sequence()
        .expect("Action list")
        .iter()
        .map(|a| a.as_str().expect("an action"))
        .collect()
}

// ------------------------------------------------------------ dead letters

/// Issue 16 item 4: a delivery that fails for good on either log path, or a
/// usage stream batch quota-sync cannot process, is kept in a queue.
#[test]
fn every_failed_delivery_is_kept_in_a_dead_letter_queue() {
    let t = template();
    // The direct subscription: an asynchronous invoke, retried at most twice.
    let invoke = &resource(&t, "LogProcessorFunction")["Properties"]["EventInvokeConfig"];
    let retries = invoke["MaximumRetryAttempts"].as_u64().expect("retries");
    assert!(retries <= 2, "bounded retries, got {retries}");
    let on_failure = &invoke["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"].as_str(), Some("SQS"));
    assert_eq!(
        get_att(&on_failure["Destination"]),
        "LogProcessorDeadLetters.Arn"
    );

    // The Kinesis mapping: bisect, bounded retries and record age (inside
    // the stream's 24 h retention, so replay can read the range back).
    let mapping = &resource(&t, "LogProcessorKinesisMapping")["Properties"];
    assert_eq!(mapping["BisectBatchOnFunctionError"].as_bool(), Some(true));
    let retries = mapping["MaximumRetryAttempts"].as_i64().expect("retries");
    assert!(
        (0..=10).contains(&retries),
        "bounded retries, got {retries}"
    );
    let age = mapping["MaximumRecordAgeInSeconds"].as_i64().expect("age");
    assert!((60..24 * 3600).contains(&age), "record age {age}");
    assert_eq!(
        get_att(&mapping["DestinationConfig"]["OnFailure"]["Destination"]),
        "LogProcessorDeadLetters.Arn"
    );

    // quota-sync's stream mapping.
    let stream =
        &resource(&t, "QuotaSyncFunction")["Properties"]["Events"]["UsageStream"]["Properties"];
    assert_eq!(stream["BisectBatchOnFunctionError"].as_bool(), Some(true));
    assert!(stream["MaximumRetryAttempts"].as_i64().is_some());
    assert_eq!(
        get_att(&stream["DestinationConfig"]["OnFailure"]["Destination"]),
        "QuotaSyncDeadLetters.Arn"
    );

    // The Kinesis mapping sends with the function's role (SAM adds the
    // EventInvokeConfig's statement itself).
    let send = statements(resource(&t, "LogProcessorFunction"))
        .into_iter()
        .find(|s| actions(s) == ["sqs:SendMessage"])
        .expect("an sqs:SendMessage statement");
    assert_eq!(get_att(&send["Resource"]), "LogProcessorDeadLetters.Arn");

    for queue in ["LogProcessorDeadLetters", "QuotaSyncDeadLetters"] {
        let q = &resource(&t, queue)["Properties"];
        assert_eq!(q["MessageRetentionPeriod"].as_u64(), Some(1_209_600));
        assert_eq!(q["SqsManagedSseEnabled"].as_bool(), Some(true));
    }
}

/// Issue 16 item 5: log-processor is told the Kinesis mapping's
/// `ParallelizationFactor` (it refuses a factor above 1 with the watermark
/// dedupe), so the two must be the same value.
#[test]
fn the_log_processor_gets_the_mappings_parallelization_factor() {
    let t = template();
    let mapping = &resource(&t, "LogProcessorKinesisMapping")["Properties"];
    let factor = mapping["ParallelizationFactor"]
        .as_u64()
        .expect("a literal ParallelizationFactor");
    let vars = &resource(&t, "LogProcessorFunction")["Properties"]["Environment"]["Variables"];
    let env = vars[log_processor::config::PARALLELIZATION_FACTOR_VAR]
        .as_str()
        .expect("TOLLGATE_KINESIS_PARALLELIZATION_FACTOR as a string");
    assert_eq!(env, factor.to_string());
    // And what the template deploys starts: the watermark only at factor 1.
    let dedupe = vars["TOLLGATE_KINESIS_DEDUPE"].as_str();
    assert!(
        dedupe == Some("transaction")
            || tollgate_core::watermark::in_order(u32::try_from(factor).unwrap_or(u32::MAX)),
        "ParallelizationFactor {factor} with TOLLGATE_KINESIS_DEDUPE {dedupe:?}"
    );
}

/// Each queue's depth has an alarm that fires on the first message, and
/// notifies the optional topic.
#[test]
fn every_queue_has_a_depth_alarm() {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    let queues: Vec<&str> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::SQS::Queue"))
        .map(|(id, _)| id.as_str().expect("id"))
        .collect();
    assert_eq!(queues.len(), 2, "{queues:?}");
    for queue in queues {
        let alarms: Vec<&Value> = resources
            .values()
            .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
            .filter(|r| {
                r["Properties"]["Dimensions"]
                    .as_sequence()
                    .is_some_and(|d| {
                        d.iter().any(|d| {
                            d["Name"].as_str() == Some("QueueName")
                                && get_att(&d["Value"]) == format!("{queue}.QueueName")
                        })
                    })
            })
            .collect();
        assert_eq!(alarms.len(), 1, "one depth alarm for {queue}");
        let p = &alarms[0]["Properties"];
        assert_eq!(p["Namespace"].as_str(), Some("AWS/SQS"));
        assert_eq!(
            p["MetricName"].as_str(),
            Some("ApproximateNumberOfMessagesVisible")
        );
        assert_eq!(p["Threshold"].as_f64(), Some(0.0));
        assert_eq!(
            p["ComparisonOperator"].as_str(),
            Some("GreaterThanThreshold")
        );
        assert_eq!(p["TreatMissingData"].as_str(), Some("notBreaching"));
        let actions = tagged(&p["AlarmActions"], "If");
        assert_eq!(actions[0].as_str(), Some("HasAlarmEmail"));
        assert_eq!(tagged(&actions[1][0], "Ref").as_str(), Some("AlarmTopic"));
    }
    let topic = resource(&t, "AlarmTopic");
    assert_eq!(topic["Condition"].as_str(), Some("HasAlarmEmail"));
    assert_eq!(
        tagged(&topic["Properties"]["Subscription"][0]["Endpoint"], "Ref").as_str(),
        Some("AlarmEmail")
    );
    assert_eq!(t["Parameters"]["AlarmEmail"]["Default"].as_str(), Some(""));
}

// ---------------------------------------------------------------- security

/// The authorizer and the log-processor meter IPv6 by the same prefix:
/// one setting for every function.
#[test]
fn every_function_meters_ipv6_by_one_prefix() {
    let t = template();
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    let value = &env[tollgate_core::Ipv6Prefix::ENV];
    assert!(
        matches!(value, Value::Tagged(tag) if tag.tag == "Ref" && tag.value.as_str() == Some("AnonymousIpv6Prefix")),
        "{value:?}"
    );
    let param = &t["Parameters"]["AnonymousIpv6Prefix"];
    assert_eq!(param["Default"].as_u64(), Some(64));
    assert_eq!(
        param["MinValue"].as_u64(),
        Some(u64::from(tollgate_core::Ipv6Prefix::MIN))
    );
    assert_eq!(
        param["MaxValue"].as_u64(),
        Some(u64::from(tollgate_core::Ipv6Prefix::MAX))
    );
}

/// quota-sync's pending copies converge without traffic: a schedule sends
/// the retry event the handler knows.
#[test]
fn pending_copies_are_retried_on_a_schedule() {
    let t = template();
    let events = &resource(&t, "QuotaSyncFunction")["Properties"]["Events"];
    let schedule = &events["RetryPendingCopies"];
    assert_eq!(schedule["Type"].as_str(), Some("Schedule"));
    let input: serde_json::Value =
        serde_json::from_str(schedule["Properties"]["Input"].as_str().expect("an input"))
            .expect("the input is JSON");
    assert_eq!(input["tollgate"], quota_sync::RETRY_PENDING);
}

/// Issue 18 (the windows counted follow the plans): the log-processor reads
/// the plans, and nothing else of the Keys table.
#[test]
fn log_processor_reads_only_the_plans_of_keys() {
    let t = template();
    let on_keys: Vec<Value> = statements(resource(&t, "LogProcessorFunction"))
        .into_iter()
        .filter(|s| {
            matches!(&s["Resource"], Value::Tagged(t) if t.tag == "GetAtt" && t.value.as_str() == Some("KeysTable.Arn"))
        })
        .collect();
    assert_eq!(on_keys.len(), 1, "{on_keys:?}");
    assert_eq!(actions(&on_keys[0]), ["dynamodb:Query"]);
    let keys = &on_keys[0]["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"];
    assert_eq!(
        keys.as_sequence()
            .map(|k| k.iter().filter_map(Value::as_str).collect::<Vec<_>>()),
        Some(vec!["plan"])
    );
}

/// Issue 17 item 7: quota-sync writes only block items of Keys, and only
/// this stage's access log group's subscription can put to the stream.
#[test]
fn quota_sync_may_write_only_block_items_of_keys() {
    let t = template();
    let writes = [
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    ];
    let on_keys: Vec<Value> = statements(resource(&t, "QuotaSyncFunction"))
        .into_iter()
        .filter(|s| {
            matches!(&s["Resource"], Value::Tagged(t) if t.tag == "GetAtt" && t.value.as_str() == Some("KeysTable.Arn"))
        })
        .collect();
    assert!(on_keys.len() >= 2, "read and write statements on Keys");
    // Each write statement is held to one key prefix: blocks are updated,
    // pending copies to peers put and deleted; nothing else is written.
    let mut writing = std::collections::BTreeMap::new();
    for s in &on_keys {
        if actions(s).iter().any(|a| writes.contains(a)) {
            let keys = &s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
            let prefixes = keys
                .as_sequence()
                .map(|k| k.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default();
            assert_eq!(prefixes.len(), 1, "{s:?}");
            writing.insert(prefixes[0].to_owned(), actions(s));
        }
    }
    assert_eq!(
        writing.keys().map(String::as_str).collect::<Vec<_>>(),
        ["block#*", "pending#*"]
    );
    assert_eq!(writing["block#*"], ["dynamodb:UpdateItem"]);
    assert_eq!(
        writing["pending#*"],
        ["dynamodb:PutItem", "dynamodb:DeleteItem"]
    );
    let peer = tollgate_core::Region::new("eu-west-1").expect("a region");
    assert!(tollgate_store::PendingCopies::partition(&peer).starts_with("pending#"));
    // The condition's prefix is the one the store writes blocks under.
    for identity in [
        tollgate_core::Identity::key("k_test").expect("a key identity"),
        tollgate_core::Identity::parse_anonymous_ip(
            "203.0.113.7",
            tollgate_core::Ipv6Prefix::DEFAULT,
        )
        .expect("an ip identity"),
    ] {
        assert!(tollgate_store::keys::block_pk(&identity).starts_with("block#"));
    }
}

/// Issue 18: the authorizer writes nothing but its leases: conditional
/// `UpdateItem`s of allowance items (`alw#...`), in its own Keys table and,
/// to pull, in the peers' (with a `GetItem` there); it gets the switch and
/// the peers it pulls from.
#[test]
fn the_authorizer_may_write_only_allowance_items() {
    let t = template();
    let authorizer = resource(&t, "AuthorizerFunction");
    let vars = &authorizer["Properties"]["Environment"]["Variables"];
    assert_eq!(
        tagged(&vars["TOLLGATE_LEASES"], "Ref").as_str(),
        Some("Leases")
    );
    assert!(
        matches!(&vars["TOLLGATE_PEER_REGIONS"], Value::Tagged(_)),
        "peers from PeerRegions"
    );
    assert_eq!(t["Parameters"]["Leases"]["Default"].as_str(), Some("true"));
    let writes = [
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    ];
    let writing: Vec<Value> = statements(authorizer)
        .into_iter()
        .filter(|s| actions(s).iter().any(|a| writes.contains(a)))
        .collect();
    assert_eq!(writing.len(), 2, "one statement here, one for the peers");
    for s in &writing {
        let keys = &s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
        assert_eq!(keys.as_sequence().map(Vec::len), Some(1), "{s:?}");
        assert_eq!(keys[0].as_str(), Some("alw#*"), "{s:?}");
        let written: Vec<&str> = actions(s)
            .into_iter()
            .filter(|a| writes.contains(a))
            .collect();
        assert_eq!(written, ["dynamodb:UpdateItem"]);
    }
    let peer = writing
        .iter()
        .find(|s| s["Sid"].as_str() == Some("PullPeerAllowances"))
        .expect("the peers' statement");
    assert!(matches!(
        &peer["Condition"]["StringEquals"]["aws:RequestedRegion"],
        Value::Tagged(_)
    ));
    // The condition's prefix is the one the store keeps allowances under.
    let key = tollgate_core::Identity::key("k_test").expect("a key identity");
    assert!(tollgate_store::allowance::allowance_pk(&key).starts_with("alw#"));
}

#[test]
fn the_kinesis_role_trusts_only_the_access_log_groups_subscription() {
    let t = template();
    let trust =
        &resource(&t, "LogsToKinesisRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"];
    let statements = trust.as_sequence().expect("statements");
    assert_eq!(statements.len(), 1);
    let s = &statements[0];
    assert_eq!(s["Action"].as_str(), Some("sts:AssumeRole"));
    let arns: Vec<&str> = s["Condition"]["StringLike"]["aws:SourceArn"]
        .as_sequence()
        .expect("SourceArn list")
        .iter()
        .map(|a| tagged(a, "Sub").as_str().expect("a Sub"))
        .collect();
    assert!(!arns.is_empty());
    for arn in arns {
        let group = arn
            .strip_prefix("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${ApiAccessLogGroup}")
            .unwrap_or_else(|| panic!("not the access log group: {arn}"));
        assert!(group.is_empty() || group == ":*", "{arn}");
    }
    assert_eq!(
        tagged(&s["Condition"]["StringEquals"]["aws:SourceAccount"], "Ref").as_str(),
        Some("AWS::AccountId")
    );
}

/// Issue 17 item 2: deployments behind a proxy turn the execute-api
/// endpoint off.
#[test]
fn the_execute_api_endpoint_can_be_disabled() {
    let t = template();
    let p = &t["Parameters"]["DisableExecuteApiEndpoint"];
    assert_eq!(p["Default"].as_str(), Some("false"));
    let cond = tagged(&t["Conditions"]["NoExecuteApi"], "Equals");
    assert_eq!(
        tagged(&cond[0], "Ref").as_str(),
        Some("DisableExecuteApiEndpoint")
    );
    assert_eq!(cond[1].as_str(), Some("true"));
    let v = tagged(
        &resource(&t, "MeteredApi")["Properties"]["DisableExecuteApiEndpoint"],
        "If",
    );
    assert_eq!(v[0].as_str(), Some("NoExecuteApi"));
    assert_eq!((v[1].as_bool(), v[2].as_bool()), (Some(true), Some(false)));
}

fn integration(t: &Value) -> &Value {
    &t["Resources"]["MeteredApi"]["Properties"]["DefinitionBody"]["paths"]["/{proxy+}"]
        ["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]
}

/// Issue 17 item 6 and issue 18: the backend gets the origin secret (from
/// Secrets Manager) when one is named, and the authorizer's context.
#[test]
fn the_backend_gets_the_origin_secret_and_the_authorizers_context() {
    let t = template();
    let params = tagged(&integration(&t)["requestParameters"], "If");
    assert_eq!(params[0].as_str(), Some("HasOriginSecret"));
    let (with, without) = (&params[1], &params[2]);
    let secret = tagged(
        &with["integration.request.header.X-Tollgate-Origin-Secret"],
        "Sub",
    );
    assert_eq!(
        secret.as_str(),
        Some("'{{resolve:secretsmanager:${OriginSecretName}}}'")
    );
    let mut rest = with.as_mapping().expect("a map").clone();
    rest.remove("integration.request.header.X-Tollgate-Origin-Secret");
    assert_eq!(
        &Value::Mapping(rest),
        without,
        "the branches differ by the secret only"
    );
    for (header, key) in [
        ("X-Tollgate-Identity", "identity"),
        ("X-Tollgate-Plan", "plan"),
        ("RateLimit-Policy", "ratelimit_policy"),
        ("RateLimit", "ratelimit"),
    ] {
        assert_eq!(
            without[format!("integration.request.header.{header}").as_str()].as_str(),
            Some(format!("context.authorizer.{key}").as_str())
        );
    }
    assert_eq!(
        without["integration.request.path.proxy"].as_str(),
        Some("method.request.path.proxy")
    );
    assert_eq!(
        t["Parameters"]["OriginSecretName"]["Default"].as_str(),
        Some("")
    );
    // Otherwise a changed secret or backend never reaches the stage.
    assert_eq!(
        resource(&t, "MeteredApi")["Properties"]["AlwaysDeploy"].as_bool(),
        Some(true)
    );
}

/// The anonymous bucket hash's key reaches every function and is never
/// echoed by CloudFormation.
#[test]
fn every_function_gets_the_bucket_secret() {
    let t = template();
    let p = &t["Parameters"]["AnonymousBucketSecret"];
    assert_eq!(p["NoEcho"].as_bool(), Some(true));
    let v = tagged(
        &t["Globals"]["Function"]["Environment"]["Variables"]["TOLLGATE_BUCKET_SECRET"],
        "If",
    );
    assert_eq!(v[0].as_str(), Some("HasBucketSecretName"));
    assert_eq!(
        tagged(&v[1], "Sub").as_str(),
        Some("{{resolve:secretsmanager:${AnonymousBucketSecretName}}}")
    );
    assert_eq!(tagged(&v[2], "Ref").as_str(), Some("AnonymousBucketSecret"));
    // No function overrides the global environment's variable.
    for r in t["Resources"].as_mapping().expect("Resources").values() {
        if r["Type"].as_str() == Some("AWS::Serverless::Function") {
            assert!(
                r["Properties"]["Environment"]["Variables"]["TOLLGATE_BUCKET_SECRET"].is_null()
            );
        }
    }
}

// ------------------------------------------------------- gateway responses

/// Fills a gateway response template's `$context.x.y` variables with
/// `sample(x.y)`, as API Gateway substitutes them (templates are not VTL).
fn substitute(template: &str, sample: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("$context.") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "$context.".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(after.len());
        out.push_str(&sample(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Issue 18: a quota denial (the authorizer's Deny, ACCESS_DENIED) is a 429
/// with Retry-After and the IETF RateLimit fields from the authorizer's
/// context and a problem+json body naming the limit and its reset; a bad
/// key (UNAUTHORIZED) is a 401 with a JSON body.
#[test]
fn quota_denials_answer_429_and_bad_keys_401() {
    let t = template();
    let responses = &resource(&t, "MeteredApi")["Properties"]["GatewayResponses"];
    let denied = &responses["ACCESS_DENIED"];
    assert_eq!(denied["StatusCode"].as_str(), Some("429"));
    let headers = &denied["ResponseParameters"]["Headers"];
    for (header, value) in [
        ("Retry-After", "context.authorizer.retry_after"),
        ("RateLimit-Policy", "context.authorizer.ratelimit_policy"),
        ("RateLimit", "context.authorizer.ratelimit"),
        ("Content-Type", "'application/problem+json'"),
    ] {
        assert_eq!(headers[header].as_str(), Some(value), "{header}");
    }
    let body = denied["ResponseTemplates"]["application/json"]
        .as_str()
        .expect("a body");
    // Empty values (a Deny without context) still make valid JSON.
    for sample in [|v: &str| format!("sample-{v}"), |_: &str| String::new()] {
        let json: serde_json::Value =
            serde_json::from_str(&substitute(body, sample)).expect("the body is JSON");
        assert_eq!(json["status"], 429);
        for field in ["type", "title", "reason", "reset_at", "retry_after"] {
            assert!(json[field].is_string(), "{field} in {json}");
        }
    }
    let filled: serde_json::Value =
        serde_json::from_str(&substitute(body, |v| format!("<{v}>"))).expect("JSON");
    assert_eq!(filled["reason"], "<authorizer.reason>");
    assert_eq!(filled["reset_at"], "<authorizer.reset_at>");
    assert_eq!(filled["retry_after"], "<authorizer.retry_after>");

    let unauthorized = &responses["UNAUTHORIZED"];
    assert_eq!(unauthorized["StatusCode"].as_str(), Some("401"));
    let body = unauthorized["ResponseTemplates"]["application/json"]
        .as_str()
        .expect("a body");
    assert!(
        !body.contains("$context"),
        "API Gateway gives no context here"
    );
    let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(json["status"], 401);
    assert!(json["detail"].is_string());
}

// ------------------------------------------------------------- table names

/// Issue 19 item 2: `tollgate --stage S` names the tables the template
/// creates for stage S, and `--stack` finds them in outputs that exist.
#[test]
fn the_cli_names_the_tables_the_template_creates() {
    let t = template();
    for stage in ["prod", "dev-2"] {
        let names = tollgate_store::TableNames::for_stage(stage);
        for spec in TABLES {
            let sub = tagged(
                &resource(&t, spec.logical_id)["Properties"]["TableName"],
                "Sub",
            )
            .as_str()
            .expect("a Sub");
            assert_eq!(sub.replace("${StageName}", stage), names.name_of(&spec));
            assert_eq!(
                sub.replace("${StageName}", stage),
                spec.name_for_stage(stage)
            );
            let output = &t["Outputs"][spec.output_key().as_str()]["Value"];
            assert_eq!(tagged(output, "Ref").as_str(), Some(spec.logical_id));
        }
    }
    let names = tollgate_store::TableNames::from_outputs(|key| Some(format!("out-{key}")))
        .expect("every output");
    assert_eq!(names.keys, "out-KeysTableName");
    assert_eq!(names.usage, "out-UsageTableName");
    assert_eq!(names.idempotency, "out-IdempotencyTableName");
    assert_eq!(
        tollgate_store::TableNames::from_outputs(
            |key| (key != "UsageTableName").then(|| "x".into())
        ),
        Err("UsageTableName".to_owned())
    );
}

// ---------------------------------------------------------- observability

fn alarms_on<'a>(t: &'a Value, metric: &str, function: &str) -> Vec<&'a Value> {
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|r| &r["Properties"])
        .filter(|p| p["Namespace"].as_str() == Some("AWS/Lambda"))
        .filter(|p| p["MetricName"].as_str() == Some(metric))
        .filter(|p| {
            p["Dimensions"].as_sequence().is_some_and(|d| {
                d.len() == 1
                    && d[0]["Name"].as_str() == Some("FunctionName")
                    && tagged(&d[0]["Value"], "Ref").as_str() == Some(function)
            })
        })
        .collect()
}

/// Issue 19 item 3: Errors and Throttles of every function, the streams'
/// IteratorAge, the authorizer's p99 duration; a dashboard; X-Ray off by
/// default.
#[test]
fn every_function_has_error_throttle_and_lag_alarms() {
    let t = template();
    for function in [
        "AuthorizerFunction",
        "LogProcessorFunction",
        "IngestFunction",
        "QuotaSyncFunction",
    ] {
        for metric in ["Errors", "Throttles"] {
            let a = alarms_on(&t, metric, function);
            assert_eq!(a.len(), 1, "{metric} alarm of {function}");
            assert_eq!(a[0]["Threshold"].as_f64(), Some(0.0));
            assert_eq!(a[0]["Statistic"].as_str(), Some("Sum"));
        }
    }
    for function in ["QuotaSyncFunction", "LogProcessorFunction"] {
        let a = alarms_on(&t, "IteratorAge", function);
        assert_eq!(a.len(), 1, "IteratorAge alarm of {function}");
        assert_eq!(a[0]["Statistic"].as_str(), Some("Maximum"));
    }
    let p99 = alarms_on(&t, "Duration", "AuthorizerFunction");
    assert_eq!(p99.len(), 1);
    assert_eq!(p99[0]["ExtendedStatistic"].as_str(), Some("p99"));
    assert_eq!(
        tagged(&p99[0]["Threshold"], "Ref").as_str(),
        Some("AuthorizerP99Millis")
    );

    let dashboard = resource(&t, "Dashboard");
    assert_eq!(
        dashboard["Type"].as_str(),
        Some("AWS::CloudWatch::Dashboard")
    );
    let body = tagged(&dashboard["Properties"]["DashboardBody"], "Sub")
        .as_str()
        .expect("a body");
    // What !Sub makes of it, with every ${...} a plain name.
    let mut filled = body.to_owned();
    while let Some(i) = filled.find("${") {
        let end = i + filled[i..].find('}').expect("a closing brace");
        filled.replace_range(i..=end, "x");
    }
    let json: serde_json::Value = serde_json::from_str(&filled).expect("the body is JSON");
    assert!(json["widgets"].as_array().is_some_and(|w| w.len() >= 4));
    for name in [
        "AuthorizerFunction",
        "LogProcessorDeadLetters.QueueName",
        "QuotaSyncFunction",
    ] {
        assert!(
            body.contains(&format!("${{{name}}}")),
            "{name} on the dashboard"
        );
    }

    assert_eq!(
        t["Parameters"]["XRayTracing"]["Default"].as_str(),
        Some("false")
    );
    let tracing = tagged(&t["Globals"]["Function"]["Tracing"], "If");
    assert_eq!(tracing[0].as_str(), Some("WithXRay"));
    assert_eq!(
        (tracing[1].as_str(), tracing[2].as_str()),
        (Some("Active"), Some("PassThrough"))
    );
    let api = tagged(
        &resource(&t, "MeteredApi")["Properties"]["TracingEnabled"],
        "If",
    );
    assert_eq!(api[0].as_str(), Some("WithXRay"));
}

/// Issue 19 item 5: the authorizer is published to an alias, rolled out by
/// canary, rolled back on its alias's error alarm, and the API calls the alias.
#[test]
fn the_authorizer_rolls_out_by_canary_behind_an_alias() {
    let t = template();
    let p = &resource(&t, "AuthorizerFunction")["Properties"];
    assert_eq!(p["AutoPublishAlias"].as_str(), Some("live"));
    let pref = &p["DeploymentPreference"];
    assert_eq!(
        tagged(&pref["Type"], "Ref").as_str(),
        Some("AuthorizerDeployment")
    );
    assert_eq!(
        t["Parameters"]["AuthorizerDeployment"]["Default"].as_str(),
        Some("Canary10Percent5Minutes")
    );
    let alarm = tagged(&pref["Alarms"][0], "Ref")
        .as_str()
        .expect("an alarm");
    let a = &resource(&t, alarm)["Properties"];
    assert_eq!(a["MetricName"].as_str(), Some("Errors"));
    let dims = a["Dimensions"].as_sequence().expect("dimensions");
    assert!(dims.iter().any(|d| d["Name"].as_str() == Some("Resource")
        && tagged(&d["Value"], "Sub").as_str() == Some("${AuthorizerFunction}:live")));
    let arn = &resource(&t, "MeteredApi")["Properties"]["Auth"]["Authorizers"]
        ["TollgateAuthorizer"]["FunctionArn"];
    assert_eq!(
        tagged(arn, "Ref").as_str(),
        Some("AuthorizerFunction.Alias")
    );
}

// ------------------------------------------------- metrics and saved queries

/// The metric names each function prints (its crate's `metrics::NAMES`).
fn metric_names(function: &str) -> Vec<&'static str> {
    match function {
        "AuthorizerFunction" => vec![authorizer::metrics::DECISIONS],
        "LogProcessorFunction" => log_processor::metrics::NAMES.to_vec(),
        "IngestFunction" => ingest::metrics::NAMES.to_vec(),
        "QuotaSyncFunction" => quota_sync::metrics::NAMES.to_vec(),
        other => panic!("no function {other}"),
    }
}

/// Checks one metric of the `Tollgate` namespace the template names: the
/// function of its `FunctionName` prints it, and a `Reason` is one the
/// authorizer writes.
fn check_metric(what: &str, namespace: &str, name: &str, dimensions: &[(String, String)]) {
    assert_eq!(namespace, tollgate_lambda::metrics::NAMESPACE, "{what}");
    let function = dimensions
        .iter()
        .find(|(k, _)| k == tollgate_lambda::metrics::FUNCTION_DIMENSION)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{what}: {name} without FunctionName"));
    assert!(
        metric_names(function).contains(&name),
        "{what}: {function} prints no {name}"
    );
    for (k, v) in dimensions {
        match k.as_str() {
            "FunctionName" => {}
            "Reason" => assert!(
                authorizer::metrics::REASONS.contains(&v.as_str()),
                "{what}: no reason {v}"
            ),
            other => panic!("{what}: a dimension {other} the functions do not write"),
        }
    }
}

/// Issue 19 item 3: the alarms and the dashboard read the metrics the
/// functions print (embedded metric format), under the namespace and
/// dimensions the code writes; metrics can be turned off per stack.
#[test]
fn the_templates_metrics_are_the_ones_the_functions_print() {
    let t = template();
    let dims = |d: &Value| -> Vec<(String, String)> {
        d.as_sequence()
            .map(|l| {
                l.iter()
                    .map(|e| {
                        let name = e["Name"].as_str().expect("a dimension name").to_owned();
                        let value = match &e["Value"] {
                            Value::String(s) => s.clone(),
                            v => tagged(v, "Ref").as_str().expect("a Ref").to_owned(),
                        };
                        (name, value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut checked = 0;
    for (id, r) in t["Resources"].as_mapping().expect("Resources") {
        if r["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let id = id.as_str().expect("an id");
        let p = &r["Properties"];
        if let Some(ns) = p["Namespace"].as_str().filter(|n| !n.starts_with("AWS/")) {
            let name = p["MetricName"].as_str().expect("MetricName");
            check_metric(id, ns, name, &dims(&p["Dimensions"]));
            checked += 1;
        }
        for m in p["Metrics"].as_sequence().into_iter().flatten() {
            let metric = &m["MetricStat"]["Metric"];
            if let Some(ns) = metric["Namespace"].as_str() {
                if !ns.starts_with("AWS/") {
                    let name = metric["MetricName"].as_str().expect("MetricName");
                    check_metric(id, ns, name, &dims(&metric["Dimensions"]));
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 4, "alarms on the functions' metrics: {checked}");
    let store = &resource(&t, "AuthorizerStoreFailureAlarm")["Properties"];
    let reasons: Vec<String> = store["Metrics"]
        .as_sequence()
        .expect("Metrics")
        .iter()
        .flat_map(|m| dims(&m["MetricStat"]["Metric"]["Dimensions"]))
        .filter(|(k, _)| k == "Reason")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(reasons, authorizer::metrics::STORE_FAILURE_REASONS);

    // The dashboard, with every ${Name} replaced by Name.
    let body = tagged(
        &resource(&t, "Dashboard")["Properties"]["DashboardBody"],
        "Sub",
    )
    .as_str()
    .expect("a body");
    let mut filled = body.to_owned();
    while let Some(i) = filled.find("${") {
        let end = i + filled[i..].find('}').expect("a closing brace");
        let name = filled[i + 2..end].to_owned();
        filled.replace_range(i..=end, &name);
    }
    let json: serde_json::Value = serde_json::from_str(&filled).expect("the body is JSON");
    let mut on_dashboard = Vec::new();
    for widget in json["widgets"].as_array().expect("widgets") {
        for m in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let m = m.as_array().expect("a metric row");
            if let Some(expression) = m[0]["expression"].as_str() {
                if let Some(rest) = expression.split("{Tollgate,").nth(1) {
                    let keys: Vec<&str> = rest.split('}').next().unwrap_or("").split(',').collect();
                    assert!(keys.contains(&"FunctionName"), "{expression}");
                    let name = rest
                        .split("MetricName=\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .expect("a MetricName in the search");
                    let function = rest
                        .split("FunctionName=\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .expect("a FunctionName in the search");
                    assert!(metric_names(function).contains(&name), "{expression}");
                    on_dashboard.push(name.to_owned());
                }
                continue;
            }
            let Some(namespace) = m[0].as_str() else {
                continue;
            };
            if namespace.starts_with("AWS/") {
                continue;
            }
            let name = m[1].as_str().expect("a metric name");
            let pairs: Vec<(String, String)> = m[2..]
                .chunks(2)
                .filter_map(|c| {
                    Some((
                        c.first()?.as_str()?.to_owned(),
                        c.get(1)?.as_str()?.to_owned(),
                    ))
                })
                .collect();
            check_metric("Dashboard", namespace, name, &pairs);
            on_dashboard.push(name.to_owned());
        }
    }
    for name in [
        "Decisions",
        "LinesCounted",
        "EventsAccepted",
        "Copies",
        "BlocksWritten",
    ] {
        assert!(
            on_dashboard.iter().any(|n| n == name),
            "{name} on the dashboard"
        );
    }

    // On by default, through the variable the functions read.
    assert_eq!(t["Parameters"]["Metrics"]["Default"].as_str(), Some("true"));
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(
        tagged(&env[tollgate_lambda::metrics::METRICS_VAR], "Ref").as_str(),
        Some("Metrics")
    );
}

/// The function whose log group `id` is (`/aws/lambda/${Function}`).
fn log_group_function(t: &Value, id: &str) -> String {
    let r = resource(t, id);
    assert_eq!(r["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{id}");
    let name = tagged(&r["Properties"]["LogGroupName"], "Sub")
        .as_str()
        .expect("a LogGroupName");
    name.strip_prefix("/aws/lambda/${")
        .and_then(|n| n.strip_suffix('}'))
        .unwrap_or_else(|| panic!("{id} is not a function's log group: {name}"))
        .to_owned()
}

/// Issue 19 item 3: Logs Insights saved queries over the functions' log
/// groups, named per stage, reading fields the functions log.
#[test]
fn the_saved_queries_read_the_functions_log_groups() {
    let t = template();
    let all = [
        "AuthorizerFunction",
        "LogProcessorFunction",
        "IngestFunction",
        "QuotaSyncFunction",
    ];
    let queries: [(&str, &str, &[&str], &[&str]); 5] = [
        (
            "DecisionsByReasonQuery",
            "decisions-by-reason",
            &["AuthorizerFunction"],
            &[authorizer::metrics::DECISIONS, "Reason", "Plan"],
        ),
        (
            "QuarantinedDeliveriesQuery",
            "quarantined-deliveries",
            &["LogProcessorFunction"],
            &["quarantine", "reason", "detail"],
        ),
        (
            "SkippedLinesQuery",
            "skipped-log-lines",
            &["LogProcessorFunction"],
            &["skipped a log line", "reason"],
        ),
        (
            "StoreFailuresQuery",
            "store-failures",
            &all,
            &["error", "level"],
        ),
        (
            "SlowestInvocationsQuery",
            "slowest-invocations",
            &all,
            &["platform.report", "durationMs"],
        ),
    ];
    for (id, name, functions, fields) in queries {
        let r = resource(&t, id);
        assert_eq!(
            r["Type"].as_str(),
            Some("AWS::Logs::QueryDefinition"),
            "{id}"
        );
        let p = &r["Properties"];
        assert_eq!(
            tagged(&p["Name"], "Sub").as_str(),
            Some(format!("tollgate/${{StageName}}/{name}").as_str()),
            "{id}"
        );
        let groups: Vec<String> = p["LogGroupNames"]
            .as_sequence()
            .expect("LogGroupNames")
            .iter()
            .map(|g| {
                let group = tagged(g, "Ref").as_str().expect("a log group Ref");
                log_group_function(&t, group)
            })
            .collect();
        assert_eq!(groups, functions, "{id}'s log groups");
        let query = p["QueryString"].as_str().expect("a QueryString");
        for field in fields {
            assert!(query.contains(field), "{id} reads {field}");
        }
    }
    // Every function's logs go to the log group the queries read.
    for function in all {
        let id = function.replace("Function", "LogGroup");
        assert_eq!(log_group_function(&t, &id), function);
    }
    // The slowest-invocations query needs platform.report lines (INFO).
    assert_eq!(
        tagged(
            &t["Globals"]["Function"]["LoggingConfig"]["SystemLogLevel"],
            "Ref"
        )
        .as_str(),
        Some("SystemLogLevel")
    );
    assert_eq!(
        t["Parameters"]["SystemLogLevel"]["Default"].as_str(),
        Some("WARN")
    );
}
