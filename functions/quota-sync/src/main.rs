//! The quota-sync Lambda function: wiring only. Configuration is read and
//! clients are built once per container; the handler is
//! [`quota_sync::QuotaSync::handle`].

use anyhow::Context;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use quota_sync::{Config, QuotaSync};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tollgate_lambda::init_tracing();
    tollgate_store::install_bucket_secret_from_env().context("reading the bucket secret")?;
    let config = Config::from_env().context("reading quota-sync's configuration")?;
    let sdk = tollgate_store::client::sdk_config().await;
    let handler = quota_sync::from_sdk_config(&config, &sdk);
    tracing::info!(region = %config.region, peers = config.peers.len(),
                   global_tables = config.global_tables, "quota-sync ready");
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move { handle(handler, event).await },
    ))
    .await
}

async fn handle(
    handler: &QuotaSync,
    event: LambdaEvent<serde_json::Value>,
) -> Result<DynamoDbEventResponse, Error> {
    let outcome = handler.handle(&event.payload).await?;
    quota_sync::metrics::emit(&outcome.stats);
    Ok(outcome.response)
}
