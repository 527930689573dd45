//! Building a DynamoDB client once per process.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::Client;

/// A client from the standard AWS configuration (environment, profile,
/// role), for `region` if given. `AWS_ENDPOINT_URL_DYNAMODB` (or
/// `AWS_ENDPOINT_URL`) points it at DynamoDB Local.
pub async fn client_from_env(region: Option<&str>) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    Client::new(&loader.load().await)
}

/// One client per region of `regions`, from the standard AWS configuration
/// loaded once (`AWS_ENDPOINT_URL_DYNAMODB` applies to all of them).
pub async fn clients_for_regions(regions: &[&str]) -> Vec<Client> {
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    regions
        .iter()
        .map(|region| {
            let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
                .region(Region::new((*region).to_owned()))
                .build();
            Client::from_conf(conf)
        })
        .collect()
}

/// A client for a DynamoDB Local endpoint, with dummy credentials. DynamoDB
/// Local keeps one database per region name, so `region` simulates a region.
pub fn local_client(endpoint: &str, region: &str) -> Client {
    Client::from_conf(local_config(endpoint, region).build())
}

/// The config builder behind [`local_client`], to add interceptors to.
pub fn local_config(endpoint: &str, region: &str) -> aws_sdk_dynamodb::config::Builder {
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
