//! The authorizer Lambda function: wiring only (see the library).

use std::sync::Arc;

use authorizer::{init_tracing, Authorizer, Config, Incoming, SystemClock};
use lambda_runtime::{service_fn, LambdaEvent};
use tollgate_store::client::{client_for, Limits};
use tollgate_store::KeysStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = Config::from_env()?;
    let sdk = tollgate_store::client::sdk_config().await;
    let client = client_for(&sdk, None, None, Limits::Operation(config.store_timeout));
    let store = KeysStore::new(client, config.keys_table.clone());
    let authorizer = Arc::new(Authorizer::new(config, store, Arc::new(SystemClock)));
    if let Err(e) = authorizer.load_plans().await {
        tracing::warn!(error = %e, "could not load plans at start-up; will retry on the first request");
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Incoming>| {
        let authorizer = authorizer.clone();
        async move { authorizer.handle_incoming(event.payload).await }
    }))
    .await
}
