//! The ingest Lambda function: wiring only. Configuration is read and the
//! DynamoDB client built once; every request goes to [`ingest::Ingest`].

use anyhow::Context;
use ingest::{Config, Ingest};
use lambda_http::{service_fn, Request};
use tollgate_store::client::{self, Limits};
use tollgate_store::UsageStore;

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
    let ingest = Ingest::new(client, config).reading_regions(regions);
    lambda_http::run(service_fn(move |req: Request| {
        let ingest = ingest.clone();
        async move { Ok::<_, std::convert::Infallible>(ingest.handle(req).await) }
    }))
    .await
}
