//! The ingest Lambda function: wiring only. Configuration is read and the
//! DynamoDB client built once; every request goes to [`ingest::Ingest`].

use anyhow::Context;
use ingest::{Config, Ingest};
use lambda_http::{service_fn, Request};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
    tollgate_store::install_bucket_secret_from_env().context("reading the bucket secret")?;
    let config = Config::from_env().context("reading the ingest configuration")?;
    let client = tollgate_store::client_from_env(None).await;
    // Usage queries read every region's own table (see `Ingest::reading_regions`).
    let names: Vec<&str> = config.regions.iter().map(|r| r.as_str()).collect();
    let regional = tollgate_store::client::clients_for_regions(&names).await;
    let regions = config.regions.iter().cloned().zip(regional).collect();
    let ingest = Ingest::new(client, config).reading_regions(regions);
    lambda_http::run(service_fn(move |req: Request| {
        let ingest = ingest.clone();
        async move { Ok::<_, std::convert::Infallible>(ingest.handle(req).await) }
    }))
    .await
}
