//! The ingest Lambda function: wiring only. Configuration is read and the
//! DynamoDB client and the stores built once; every request goes to [`ingest::Ingest`].

use anyhow::Context;
use ingest::{Config, Ingest, Stores};
use lambda_http::{service_fn, Request};
use tollgate_idempotency::{Idempotency, SystemClock};
use tollgate_store::client::{self, Limits};
use tollgate_store::{CommitStore, KeysStore, UsageStore};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate_lambda::init_tracing();
    tollgate_store::install_bucket_secret_from_env().context("reading the bucket secret")?;
    let config = Config::from_env().context("reading the ingest configuration")?;
    let sdk = client::sdk_config().await;
    let client = client::client_for(&sdk, None, None, Limits::Standard);
    // Usage queries read every region's own table (see `Ingest::reading_regions`).
    let regions = config
        .regions
        .iter()
        .map(|r| {
            let regional = client::client_for(&sdk, Some(r.as_str()), None, Limits::Standard);
            (r.clone(), UsageStore::new(regional, &config.tables.usage))
        })
        .collect();
    let stores = Stores {
        commits: CommitStore::on(
            client.clone(),
            &config.tables.usage,
            config.top_index,
            Stores::marker_config(&config, SystemClock),
        ),
        keys: KeysStore::new(client.clone(), &config.tables.keys),
        requests: Idempotency::new(client, Stores::request_config(&config, SystemClock)),
    };
    let ingest = Ingest::new(stores, config).reading_regions(regions);
    lambda_http::run(service_fn(move |req: Request| {
        let ingest = ingest.clone();
        async move { Ok::<_, std::convert::Infallible>(ingest.handle(req).await) }
    }))
    .await
}
