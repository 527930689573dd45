//! A minimal Lambda function for testing the runtime API stand-in: it
//! echoes its event, and fails when the event has `"fail": true`.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        if event.payload.get("fail").and_then(Value::as_bool) == Some(true) {
            return Err(Error::from("asked to fail"));
        }
        eprintln!("handled request {}", event.context.request_id);
        Ok::<_, Error>(json!({ "echo": event.payload, "deadline_set": event.context.deadline > 0 }))
    }))
    .await
}
