//! The DynamoDB Local harness: fresh tables per test, in one or more
//! simulated regions.
//!
//! Tests connect to the DynamoDB Local that `make test` starts, through
//! `AWS_ENDPOINT_URL_DYNAMODB`. Each [`Harness`] creates its own uniquely
//! named tables, so tests run in parallel, and deletes them when dropped.
//! When DynamoDB Local is not reachable a test fails, saying how to start
//! it; it never skips.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use tollgate_store::client::local_config;
use tollgate_store::{local_client, RequestCounter, TableNames, TABLES};

/// The region name tests use unless they simulate several.
pub const TEST_REGION: &str = "local-a";

/// The DynamoDB Local endpoint, checked to be reachable.
///
/// # Panics
/// When `AWS_ENDPOINT_URL_DYNAMODB` is unset or nothing answers there: the
/// message says how to start DynamoDB Local.
pub fn endpoint() -> String {
    const HOW: &str = "start DynamoDB Local with `scripts/dynamodb-local.sh start` and export \
        AWS_ENDPOINT_URL_DYNAMODB=<the endpoint it prints>, or run everything with `make test`";
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .unwrap_or_else(|_| panic!("AWS_ENDPOINT_URL_DYNAMODB is not set: {HOW}"));
    let host_port = endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let reachable = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "DynamoDB Local is not reachable at {endpoint}: {HOW}"
    );
    endpoint
}

/// A unique table-name prefix for one test.
pub fn unique_prefix(label: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{}-{:06x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        label,
        rand::random::<u32>() & 0xff_ffff
    )
}

/// One test's tables in DynamoDB Local, in one or more simulated regions.
#[derive(Debug)]
pub struct Harness {
    pub endpoint: String,
    pub tables: TableNames,
    regions: Vec<String>,
}

impl Harness {
    /// Fresh tables in the default test region.
    pub async fn new(label: &str) -> Harness {
        Harness::with_regions(label, &[TEST_REGION]).await
    }

    /// Fresh tables, with the same names, in each of `regions` (DynamoDB
    /// Local keeps one database per region name).
    pub async fn with_regions(label: &str, regions: &[&str]) -> Harness {
        let endpoint = endpoint();
        let tables = TableNames::prefixed(&unique_prefix(label));
        for region in regions {
            let client = local_client(&endpoint, region);
            for spec in TABLES {
                spec.create(&client, tables.name_of(&spec))
                    .await
                    .unwrap_or_else(|e| panic!("creating {} in {region}: {e}", spec.logical_id));
            }
        }
        Harness {
            endpoint,
            tables,
            regions: regions.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// A client for the first region.
    pub fn client(&self) -> Client {
        local_client(&self.endpoint, &self.regions[0])
    }

    /// A client for one simulated region.
    pub fn client_in(&self, region: &str) -> Client {
        local_client(&self.endpoint, region)
    }

    /// A client for the first region that counts its requests and, with
    /// `capacity`, the capacity units they consume.
    pub fn counted_client(&self, capacity: bool) -> (Client, RequestCounter) {
        let counter = if capacity {
            RequestCounter::with_capacity()
        } else {
            RequestCounter::new()
        };
        let conf = local_config(&self.endpoint, &self.regions[0])
            .interceptor(counter.clone())
            .build();
        (Client::from_conf(conf), counter)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let (endpoint, tables, regions) = (
            self.endpoint.clone(),
            self.tables.clone(),
            self.regions.clone(),
        );
        // Drop cannot await: delete on a thread with its own small runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                for region in &regions {
                    let client = local_client(&endpoint, region);
                    for spec in TABLES {
                        let _ = client
                            .delete_table()
                            .table_name(tables.name_of(&spec))
                            .send()
                            .await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}
