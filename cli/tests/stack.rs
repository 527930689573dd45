//! `tollgate --stage` and `--stack` find a deployed stack's tables: the
//! real CLI binary against DynamoDB Local and moto's CloudFormation.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use aws_config::{BehaviorVersion, Region};
use tollgate_store::{TableNames, TABLES};
use tollgate_tests::{unique_prefix, Harness};

const REGION: &str = "us-east-1";

fn tollgate(args: &[&str], extra_env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env_remove("TOLLGATE_STAGE")
        .env_remove("TOLLGATE_STACK")
        .env_remove("TOLLGATE_KEYS_TABLE")
        .env_remove("TOLLGATE_USAGE_TABLE")
        .env_remove("TOLLGATE_IDEMPOTENCY_TABLE")
        .envs(extra_env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn stage_names_the_tables_as_the_template_does() {
    let endpoint = tollgate_tests::endpoint();
    let stage = unique_prefix("s").replace('_', "-").to_lowercase();
    let stage = &stage[stage.len().saturating_sub(20)..];
    let stage = stage.trim_start_matches('-');
    let env = [("AWS_ENDPOINT_URL_DYNAMODB", endpoint.as_str())];
    let (ok, out, err) = tollgate(&["--stage", stage, "tables", "create"], &env);
    assert!(ok, "{out}{err}");
    let want = TableNames::for_stage(stage);
    for spec in TABLES {
        let name = want.name_of(&spec);
        assert!(out.contains(&format!("{name}: created")), "{name} in {out}");
    }
    let (ok, out, err) = tollgate(&["--stage", stage, "tables", "describe"], &env);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("{}: status=ACTIVE", want.keys)),
        "{out}"
    );

    let (ok, _, err) = tollgate(&["--stage", "Bad_Stage", "tables", "describe"], &env);
    assert!(!ok);
    assert!(err.contains("--stage"), "{err}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = tollgate_store::local_client(&endpoint, REGION);
        for spec in TABLES {
            let _ = client
                .delete_table()
                .table_name(want.name_of(&spec))
                .send()
                .await;
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn stack_reads_the_table_names_from_the_outputs() {
    let moto = std::env::var("TOLLGATE_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("TOLLGATE_MOTO_ENDPOINT is not set: `scripts/moto.sh start`, or `make test`")
    });
    let h = Harness::with_regions("stack", &[REGION]).await;
    let stack = unique_prefix("stack").replace('_', "-");
    let outputs: String = TABLES
        .iter()
        .map(|spec| {
            format!(
                "  {}:\n    Value: {}\n",
                spec.output_key(),
                h.tables.name_of(spec)
            )
        })
        .collect();
    let body = format!(
        "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\nOutputs:\n{outputs}  LogProcessorDeadLetterQueueUrl:\n    Value: !Ref Queue\n"
    );
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(&moto)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "local", "local", None, None, "test",
        ))
        .load()
        .await;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    cfn.create_stack()
        .stack_name(&stack)
        .template_body(body)
        .send()
        .await
        .unwrap();
    let described = cfn
        .describe_stacks()
        .stack_name(&stack)
        .send()
        .await
        .unwrap();
    let queue_url = described.stacks()[0]
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some("LogProcessorDeadLetterQueueUrl"))
        .and_then(|o| o.output_value())
        .unwrap()
        .to_owned();

    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", h.endpoint.as_str()),
        ("AWS_ENDPOINT_URL_CLOUDFORMATION", moto.as_str()),
        ("AWS_ENDPOINT_URL_SQS", moto.as_str()),
    ];
    let (ok, out, err) = tollgate(&["--stack", &stack, "tables", "describe"], &env);
    assert!(ok, "{out}{err}");
    for spec in TABLES {
        let name = h.tables.name_of(&spec);
        assert!(
            out.contains(&format!("{name}: status=ACTIVE")),
            "{name} in {out}"
        );
    }
    // The queue output is replay's default queue: an empty one replays nothing.
    let (ok, out, err) = tollgate(&["--stack", &stack, "replay", "--json"], &env);
    assert!(ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["replayed"], 0);
    assert_eq!(report["queue_url"], queue_url.as_str(), "{report}");

    let (ok, _, err) = tollgate(&["--stack", "no-such-stack", "tables", "describe"], &env);
    assert!(!ok);
    assert!(err.contains("no-such-stack"), "{err}");
}
