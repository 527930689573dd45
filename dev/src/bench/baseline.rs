//! The write-per-request design the cost run compares against.

use std::collections::BTreeMap;

use anyhow::Result;
use futures::StreamExt;
use tollgate_core::Identity;
use tollgate_store::attr::{n, s};
use tollgate_store::{RequestCounter, TableNames};

use super::play::Progress;
use super::setup::counted;

/// The write-per-request design: each counted request is one `UpdateItem`
/// on its identity's daily counter in its region, and each change is copied
/// to every other region. Returns the counters' final global values' error
/// against the truth: (counters, counters that differ).
pub(super) async fn baseline(
    endpoint: &str,
    regions: &[String],
    names: &TableNames,
    allowed: &[(usize, Identity, bool)],
    counter: &RequestCounter,
    day: tollgate_core::Period,
) -> Result<(u64, u64)> {
    let table = format!("{}-baseline", names.usage);
    let clients: Vec<aws_sdk_dynamodb::Client> = regions
        .iter()
        .map(|r| counted(endpoint, r, counter))
        .collect();
    for (r, region) in regions.iter().enumerate() {
        let mut spec = tollgate_store::USAGE;
        spec.stream = false;
        spec.create(&tollgate_store::local_client(endpoint, region), &table)
            .await?;
        let _ = r;
    }
    counter.reset();
    let writes = allowed
        .iter()
        .map(|(_, _, twice)| 1 + usize::from(*twice))
        .sum();
    let mut progress = Progress::new("baseline writes", writes);
    let jobs = allowed.iter().flat_map(|(r, identity, twice)| {
        let times = if *twice { 2 } else { 1 };
        (0..times).map(move |_| (*r, identity.clone()))
    });
    let results: Vec<Result<()>> = futures::stream::iter(jobs.map(|(r, identity)| {
        let clients = clients.clone();
        let table = table.clone();
        async move {
            let pk = format!("requests#{identity}");
            let sk = format!("{day}#{r}");
            let out = clients[r]
                .update_item()
                .table_name(&table)
                .key("pk", s(&pk))
                .key("sk", s(&sk))
                .update_expression("ADD #n :one")
                .expression_attribute_names("#n", "n")
                .expression_attribute_values(":one", n(1))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
                .send()
                .await?;
            let value = out
                .attributes()
                .and_then(|a| a.get("n"))
                .cloned()
                .unwrap_or(n(0));
            for (peer, client) in clients.iter().enumerate() {
                if peer != r {
                    client
                        .put_item()
                        .table_name(&table)
                        .item("pk", s(&pk))
                        .item("sk", s(&sk))
                        .item("n", value.clone())
                        .send()
                        .await?;
                }
            }
            Ok(())
        }
    }))
    .buffer_unordered(16)
    .enumerate()
    .map(|(done, result)| {
        progress.tick(done + 1);
        result
    })
    .collect()
    .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    // Count check (not counted): the first region's view of each identity against the truth.
    let mut truth: BTreeMap<&Identity, u64> = BTreeMap::new();
    for (_, identity, _) in allowed {
        *truth.entry(identity).or_default() += 1;
    }
    let mut wrong = 0;
    let reader = tollgate_store::local_client(endpoint, &regions[0]);
    for (identity, want) in truth.iter().take(300) {
        let out = reader
            .query()
            .table_name(&table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("requests#{identity}")))
            .send()
            .await?;
        let got: u64 = out
            .items()
            .iter()
            .filter_map(|i| tollgate_store::attr::get_u64(i, "n"))
            .sum();
        if got != *want {
            wrong += 1;
        }
    }
    Ok((truth.len().min(300) as u64, wrong))
}
