//! The Lambda Runtime API stand-in runs a real binary through the runtime protocol.

use serde_json::json;
use tollgate_testkit::runtime_api::run_binary;

#[test]
fn a_binary_answers_each_event_in_order_and_errors_come_back_as_errors() {
    let run = run_binary(
        env!("CARGO_BIN_EXE_echo-lambda"),
        &[],
        &[json!({"n": 1}), json!({"fail": true}), json!({"n": 3})],
    );
    assert_eq!(run.results.len(), 3);
    assert_eq!(
        run.results[0].as_ref().ok(),
        Some(&json!({"echo": {"n": 1}, "deadline_set": true}))
    );
    let error = run.results[1].as_ref().expect_err("the second event fails");
    assert!(error.to_string().contains("asked to fail"), "{error}");
    assert_eq!(
        run.results[2].as_ref().ok(),
        Some(&json!({"echo": {"n": 3}, "deadline_set": true}))
    );
    assert!(run.logs.contains("handled request"), "logs: {}", run.logs);
}
