//! The log-processor Lambda function: wiring only. Configuration and the
//! DynamoDB client are built once per container; the handler is
//! [`log_processor::Processor::handle`].

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use log_processor::{Config, Processor};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate_lambda::init_tracing();
    tollgate_store::install_bucket_secret_from_env().context("reading the bucket secret")?;
    let config = Config::from_env().context("reading the log-processor configuration")?;
    let client = tollgate_store::client_from_env(None).await;
    let processor = Processor::new(client, config);
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        processor.handle(event.payload).await.map_err(|e| {
            tracing::error!(error = %e, "invocation failed; Lambda will retry it");
            lambda_runtime::Error::from(e)
        })
    }))
    .await
}
