//! The authorizer Lambda function: wiring only (see the library).

use std::sync::Arc;

use authorizer::{init_tracing, Authorizer, Config, Incoming, SystemClock};
use lambda_runtime::{service_fn, LambdaEvent};
use tollgate_store::client::{client_for, Limits};
use tollgate_store::{AllowanceStore, KeysStore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = Config::from_env()?;
    let sdk = tollgate_store::client::sdk_config().await;
    let client = client_for(&sdk, None, None, Limits::Operation(config.store_timeout));
    let store = KeysStore::new(client.clone(), config.keys_table.clone());
    // Leases: this region's allowances, and the peers' a spent region pulls from.
    let this = config
        .region
        .clone()
        .ok_or("TOLLGATE_REGION or AWS_REGION must name this region")?;
    let mut regions = vec![this.clone()];
    let mut peers = Vec::new();
    for p in &config.peers {
        let limits = Limits::Operation(config.peer_timeout);
        let peer = client_for(&sdk, Some(p.region.as_str()), p.endpoint.as_deref(), limits);
        regions.push(p.region.clone());
        peers.push((p.region.clone(), peer));
    }
    let allowances = AllowanceStore::new(
        client,
        &config.keys_table,
        &regions,
        &this,
        peers,
        config.peer_timeout,
    )?;
    let authorizer = Arc::new(Authorizer::new(
        config,
        store,
        allowances,
        Arc::new(SystemClock),
    ));
    if let Err(e) = authorizer.load_plans().await {
        tracing::warn!(error = %e, "could not load plans at start-up; will retry on the first request");
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Incoming>| {
        let authorizer = authorizer.clone();
        async move { authorizer.handle_incoming(event.payload).await }
    }))
    .await
}
