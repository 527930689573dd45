//! The log-processor Lambda function: wiring only. Configuration, the
//! DynamoDB client and the stores are built once per container; the handler is
//! [`log_processor::Processor::handle`].

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use log_processor::{Config, Processor};
use serde_json::Value;
use tollgate_store::{CommitStore, KeysStore};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate_lambda::init_tracing();
    tollgate_store::install_bucket_secret_from_env().context("reading the bucket secret")?;
    let config = Config::from_env().context("reading the log-processor configuration")?;
    let client = tollgate_store::client_from_env(None).await;
    let markers = Processor::marker_config(&config);
    let keys = KeysStore::new(client.clone(), config.keys_table.clone());
    let commits = CommitStore::on(client, &config.usage_table, config.top_index, markers);
    let processor = Processor::new(commits, keys, config);
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Boxed: the handler's future is deep (decoding, the committer).
        Box::pin(processor.handle(event.payload))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "invocation failed; Lambda will retry it");
                lambda_runtime::Error::from(e)
            })
    }))
    .await
}
