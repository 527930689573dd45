//! `tollgate-idempotency` marker and batch modes against DynamoDB Local:
//! duplicates within and across batches, chunking, partly conflicting
//! chunks, a crash between chunks repaired by a retry, concurrent batches,
//! and request counts.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use tollgate_idempotency::{
    Idempotency, IdempotencyConfig, IdempotencyError, ManualClock, MarkOutcome,
};
use tollgate_tests::Harness;

fn idem(h: &Harness, client: Client) -> Idempotency {
    Idempotency::new(
        client,
        IdempotencyConfig::new(&h.tables.idempotency)
            .namespace("ingest")
            .marker_expiry(Duration::from_secs(35 * 24 * 3600)),
    )
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("evt-{i:05}")).collect()
}

/// The caller's writes: `ADD n :k` to one counter item per group of ten ids
/// (so a chunk's writes depend on its ids), in the Usage table.
fn counter_writes(table: &str, chunk: &[String]) -> Result<Vec<TransactWriteItem>, String> {
    let mut groups: std::collections::BTreeMap<String, u64> = Default::default();
    for id in chunk {
        let n: usize = id
            .trim_start_matches("evt-")
            .parse()
            .map_err(|e| format!("{e}"))?;
        *groups.entry(format!("group-{}", n / 10)).or_default() += 1;
    }
    groups
        .into_iter()
        .map(|(group, count)| {
            let update = Update::builder()
                .table_name(table)
                .key("pk", AttributeValue::S(group))
                .key("sk", AttributeValue::S("total".into()))
                .update_expression("ADD #n :k")
                .expression_attribute_names("#n", "n")
                .expression_attribute_values(":k", AttributeValue::N(count.to_string()))
                .build()
                .map_err(|e| e.to_string())?;
            Ok(TransactWriteItem::builder().update(update).build())
        })
        .collect()
}

/// The sum of every counter item in the Usage table.
async fn counted(client: &Client, table: &str) -> u64 {
    let out = client.scan().table_name(table).send().await.unwrap();
    out.items()
        .iter()
        .map(|i| {
            i.get("n")
                .and_then(|v| v.as_n().ok())
                .map_or(0, |n| n.parse::<u64>().unwrap())
        })
        .sum()
}

#[tokio::test]
async fn a_marker_is_one_request_new_then_duplicate_then_new_after_expiry() {
    let h = Harness::new("idem-mark").await;
    let (client, counter) = h.counted_client(true);
    let clock = ManualClock::starting_now();
    let idem = Idempotency::new(
        client,
        IdempotencyConfig::new(&h.tables.idempotency)
            .marker_expiry(Duration::from_secs(60))
            .clock(clock.clone()),
    );
    assert_eq!(idem.mark("e1").await.unwrap(), MarkOutcome::New);
    assert_eq!(counter.total_requests(), 1);
    assert_eq!(counter.total_units().1, 1.0, "one write unit");
    assert_eq!(idem.mark("e1").await.unwrap(), MarkOutcome::Duplicate);
    assert_eq!(counter.total_requests(), 2);
    assert_eq!(idem.mark("e2").await.unwrap(), MarkOutcome::New);
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        idem.mark("e1").await.unwrap(),
        MarkOutcome::New,
        "the marker expired"
    );
    assert_eq!(idem.mark("e1").await.unwrap(), MarkOutcome::Duplicate);
    // A marker is a completed record with no response.
    let record = idem
        .get_record(&idem.marker_key("e1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.data, None);
}

#[tokio::test]
async fn duplicates_within_one_batch_and_across_batches() {
    let h = Harness::new("idem-dups").await;
    let client = h.client();
    let idem = idem(&h, client.clone());
    let usage = h.tables.usage.clone();
    let batch: Vec<String> = ["a", "b", "a", "c", "b", "a"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut calls = Vec::new();
    let out = idem
        .commit_batch(&batch, |chunk| {
            calls.push(chunk.to_vec());
            Ok::<_, String>(vec![])
        })
        .await
        .unwrap();
    assert_eq!(out.new, ["a", "b", "c"]);
    assert_eq!(out.duplicates, ["a", "b", "a"]);
    assert_eq!(out.transactions, 1);
    assert_eq!(
        calls.last().unwrap(),
        &["a", "b", "c"],
        "writes_for saw each id once"
    );
    // A second batch overlapping the first.
    let batch: Vec<String> = ["c", "d", "a"].iter().map(|s| s.to_string()).collect();
    let out = idem
        .commit_batch(&batch, |_| Ok::<_, String>(vec![]))
        .await
        .unwrap();
    assert_eq!(out.new, ["d"]);
    assert_eq!(out.duplicates, ["c", "a"]);
    // Exactly the same batch again: all duplicates, no transaction.
    let out = idem
        .commit_batch(&batch, |_| Ok::<_, String>(vec![]))
        .await
        .unwrap();
    assert!(out.new.is_empty());
    assert_eq!(out.transactions, 0);
    // mark() and batches share markers.
    assert_eq!(idem.mark("d").await.unwrap(), MarkOutcome::Duplicate);
    let _ = usage;
}

#[tokio::test]
async fn a_batch_of_250_is_cut_into_chunks_of_at_most_100_actions() {
    let h = Harness::new("idem-chunks").await;
    let (client, counter) = h.counted_client(false);
    let idem = idem(&h, client.clone());
    // Without caller writes: ceil(250 / 100) = 3 transactions.
    let out = idem
        .commit_batch(&ids(0..250), |_| Ok::<_, String>(vec![]))
        .await
        .unwrap();
    assert_eq!((out.new.len(), out.transactions), (250, 3));
    assert_eq!(counter.requests("TransactWriteItems"), 3);
    assert_eq!(counter.total_requests(), 3);
    // With caller writes (one counter per ten ids): chunks shrink to fit.
    counter.reset();
    let usage = h.tables.usage.clone();
    let mut chunk_sizes = Vec::new();
    let out = idem
        .commit_batch(&ids(1000..1250), |chunk| {
            let w = counter_writes(&usage, chunk)?;
            chunk_sizes.push((chunk.len(), w.len()));
            Ok::<_, String>(w)
        })
        .await
        .unwrap();
    assert_eq!(out.new.len(), 250);
    // 90 ids + 9 groups = 99; the 91st id would start a 10th group: 101.
    assert_eq!(out.transactions, 3);
    assert_eq!(counter.requests("TransactWriteItems"), 3);
    assert!(chunk_sizes.iter().all(|(ids, writes)| ids + writes <= 101));
    assert_eq!(counted(&client, &usage).await, 250);
}

#[tokio::test]
async fn a_chunk_that_partly_conflicts_commits_the_rest() {
    let h = Harness::new("idem-partial").await;
    let client = h.client();
    let idem = idem(&h, client.clone());
    let usage = h.tables.usage.clone();
    // Some ids of the middle of the batch were committed earlier.
    let earlier: Vec<String> = ids(0..60)
        .into_iter()
        .filter(|id| id.ends_with('3') || id.ends_with('7'))
        .collect();
    let out = idem
        .commit_batch(&earlier, |chunk| counter_writes(&usage, chunk))
        .await
        .unwrap();
    assert_eq!(out.new.len(), 12);
    let mut seen = Vec::new();
    let out = idem
        .commit_batch(&ids(0..60), |chunk| {
            seen.push(chunk.len());
            counter_writes(&usage, chunk)
        })
        .await
        .unwrap();
    assert_eq!(out.new.len(), 48);
    assert_eq!(out.duplicates, earlier);
    assert_eq!(out.transactions, 1);
    assert_eq!(
        *seen.last().unwrap(),
        48,
        "the chunk was rebuilt without the duplicates"
    );
    assert_eq!(counted(&client, &usage).await, 60, "each id counted once");
}

#[tokio::test]
async fn a_crash_between_chunks_is_repaired_by_a_retry() {
    let h = Harness::new("idem-crash").await;
    let client = h.client();
    let idem = idem(&h, client.clone());
    let usage = h.tables.usage.clone();
    let batch = ids(0..250);
    // The first attempt fails while building the second chunk.
    let mut chunks_started = 0;
    let mut last_first = String::new();
    let err = idem
        .commit_batch(&batch, |chunk| {
            if chunk[0] != last_first {
                chunks_started += 1;
                last_first = chunk[0].clone();
            }
            if chunks_started == 2 {
                return Err("crash".to_owned());
            }
            counter_writes(&usage, chunk)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IdempotencyError::Handler(m) if m == "crash"),
        "{err}"
    );
    let after_crash = counted(&client, &usage).await;
    assert_eq!(after_crash, 90, "the first chunk stays committed");
    // The retry: the committed chunk is all duplicates, the rest is new.
    let out = idem
        .commit_batch(&batch, |chunk| counter_writes(&usage, chunk))
        .await
        .unwrap();
    assert_eq!(out.duplicates.len(), 90);
    assert_eq!(out.new.len(), 160);
    assert_eq!(
        counted(&client, &usage).await,
        250,
        "no double effect, nothing lost"
    );
    // And again: nothing changes.
    let out = idem
        .commit_batch(&batch, |chunk| counter_writes(&usage, chunk))
        .await
        .unwrap();
    assert_eq!(
        (out.new.len(), out.duplicates.len(), out.transactions),
        (0, 250, 0)
    );
    assert_eq!(counted(&client, &usage).await, 250);
}

#[tokio::test]
async fn a_cancelled_caller_write_is_an_error_not_a_duplicate() {
    let h = Harness::new("idem-callerfail").await;
    let client = h.client();
    let idem = idem(&h, client.clone());
    let usage = h.tables.usage.clone();
    let err = idem
        .commit_batch(&ids(0..3), |_| {
            let update = Update::builder()
                .table_name(&usage)
                .key("pk", AttributeValue::S("x".into()))
                .key("sk", AttributeValue::S("y".into()))
                .update_expression("SET v = :v")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":v", AttributeValue::N("1".into()))
                .build()
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(vec![TransactWriteItem::builder().update(update).build()])
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IdempotencyError::WriteCancelled { index: 0, code, .. } if code == "ConditionalCheckFailed"),
        "{err}"
    );
    // Nothing was marked.
    let out = idem
        .commit_batch(&ids(0..3), |_| Ok::<_, String>(vec![]))
        .await
        .unwrap();
    assert_eq!(out.new.len(), 3);
}

#[tokio::test]
async fn concurrent_overlapping_batches_count_each_id_once() {
    let h = Harness::new("idem-concbatch").await;
    let client = h.client();
    let idem = idem(&h, client.clone());
    let usage = h.tables.usage.clone();
    let mut tasks = Vec::new();
    for t in 0..6 {
        let (idem, usage) = (idem.clone(), usage.clone());
        // Overlapping windows of ids over 0..160.
        let batch = ids(t * 20..t * 20 + 60);
        tasks.push(tokio::spawn(async move {
            idem.commit_batch(&batch, |chunk| counter_writes(&usage, chunk))
                .await
        }));
    }
    let mut new = Vec::new();
    for t in tasks {
        let out = t.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
        new.extend(out.new);
    }
    new.sort();
    let unique = new.len();
    new.dedup();
    assert_eq!(unique, new.len(), "no id was new twice");
    assert_eq!(new, ids(0..160));
    assert_eq!(counted(&client, &usage).await, 160);
}
