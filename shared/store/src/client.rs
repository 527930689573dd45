//! The one recipe for DynamoDB clients: every function, the CLI and the
//! tests build theirs here, so timeouts, retries and endpoints are chosen in
//! one place.
//!
//! The standard AWS configuration (environment, profile, role) is loaded
//! once per process ([`sdk_config`]); `AWS_ENDPOINT_URL_DYNAMODB` (or
//! `AWS_ENDPOINT_URL`) points every client at DynamoDB Local. A client is
//! then derived for a region, an optional endpoint of its own and its
//! [`Limits`].

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{Builder, Credentials};
use aws_sdk_dynamodb::Client;

/// How long a client's calls may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limits {
    /// The SDK's defaults (the CLI, batch work).
    #[default]
    Standard,
    /// Every call, retries included, ends within this time: the
    /// authorizer's store timeout, after which its failure policy applies.
    Operation(Duration),
    /// A peer region: a connect timeout, attempt and operation timeouts
    /// within this time and two attempts, so that a peer that is down fails
    /// fast instead of holding the batch.
    Peer(Duration),
}

impl Limits {
    /// `builder` with these limits applied.
    pub fn apply(self, builder: Builder) -> Builder {
        match self {
            Limits::Standard => builder,
            Limits::Operation(timeout) => {
                builder.timeout_config(TimeoutConfig::builder().operation_timeout(timeout).build())
            }
            Limits::Peer(timeout) => {
                let attempt = timeout / 2;
                builder
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(attempt.min(Duration::from_secs(1)))
                            .operation_attempt_timeout(attempt)
                            .operation_timeout(timeout)
                            .build(),
                    )
                    .retry_config(
                        RetryConfig::standard()
                            .with_max_attempts(2)
                            .with_initial_backoff(Duration::from_millis(20)),
                    )
            }
        }
    }
}

/// The standard AWS configuration, loaded once per process.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A client from `sdk` for `region` (the configuration's own when `None`),
/// reached at `endpoint` when given, with `limits`.
pub fn client_for(
    sdk: &SdkConfig,
    region: Option<&str>,
    endpoint: Option<&str>,
    limits: Limits,
) -> Client {
    let mut builder = Builder::from(sdk);
    if let Some(region) = region {
        builder = builder.region(Region::new(region.to_owned()));
    }
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(limits.apply(builder).build())
}

/// A client from the standard AWS configuration, for `region` if given.
pub async fn client_from_env(region: Option<&str>) -> Client {
    client_for(&sdk_config().await, region, None, Limits::Standard)
}

/// One client per region of `regions`, from the standard AWS configuration
/// loaded once (`AWS_ENDPOINT_URL_DYNAMODB` applies to all of them).
pub async fn clients_for_regions(regions: &[&str]) -> Vec<Client> {
    let sdk = sdk_config().await;
    regions
        .iter()
        .map(|region| client_for(&sdk, Some(region), None, Limits::Standard))
        .collect()
}

/// A client for a DynamoDB Local endpoint, with dummy credentials. DynamoDB
/// Local keeps one database per region name, so `region` simulates a region.
pub fn local_client(endpoint: &str, region: &str) -> Client {
    Client::from_conf(local_config(endpoint, region).build())
}

/// A client for a DynamoDB Local endpoint with `limits` (a peer region's
/// timeouts, say), as [`local_client`] otherwise.
pub fn local_client_with(endpoint: &str, region: &str, limits: Limits) -> Client {
    Client::from_conf(limits.apply(local_config(endpoint, region)).build())
}

/// The config builder behind [`local_client`], to add interceptors or
/// [`Limits`] to.
pub fn local_config(endpoint: &str, region: &str) -> Builder {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "tollgate-local",
        ))
}
