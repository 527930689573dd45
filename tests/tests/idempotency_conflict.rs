//! `tollgate-idempotency` batch mode when a `TransactWriteItems` is
//! cancelled with `TransactionConflict`, against DynamoDB Local.
//!
//! DynamoDB Local runs transactions one at a time: 16 batches racing on the
//! same markers and counter item, for ten rounds, never drew a
//! `TransactionConflict` from it. So the conflict is forced on the wire: an
//! interceptor on the racing batch's client turns its chosen
//! `TransactWriteItems` into a harmless `ListTables` and answers with the
//! `TransactionCanceledException` DynamoDB sends when another transaction is
//! in progress on an item (reasons `None` for the markers, `TransactionConflict`
//! on the shared counter). The other batch then really commits, on the same
//! markers and counter, while the first one backs off, which is the
//! interleaving a real conflict has. Every count is read back from DynamoDB
//! Local.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use tollgate_idempotency::{Idempotency, IdempotencyConfig, IdempotencyError};
use tollgate_store::client::local_config;
use tollgate_tests::{Harness, TEST_REGION};

/// Answers the `TransactWriteItems` requests numbered in `conflict_on`
/// (counting from 0) with a `TransactionConflict` cancellation, without
/// letting them reach DynamoDB Local.
#[derive(Debug, Clone, Default)]
struct Conflicts {
    seen: Arc<AtomicU32>,
    conflict_on: Arc<Vec<u32>>,
    /// Set while the current request is being answered by us.
    injecting: Arc<AtomicBool>,
    /// How many were injected.
    injected: Arc<AtomicU32>,
    /// The action count of the request being answered.
    actions: Arc<AtomicU32>,
}

impl Conflicts {
    fn on(requests: &[u32]) -> Self {
        Conflicts {
            conflict_on: Arc::new(requests.to_vec()),
            ..Conflicts::default()
        }
    }
}

impl Intercept for Conflicts {
    fn name(&self) -> &'static str {
        "test::Conflicts"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        if !target.ends_with(".TransactWriteItems") {
            return Ok(());
        }
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        if !self.conflict_on.contains(&n) {
            return Ok(());
        }
        // Count the actions, then send something without effect instead.
        let actions = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
            .unwrap_or(0);
        request
            .headers_mut()
            .insert("x-amz-target", "DynamoDB_20120810.ListTables");
        let harmless = r#"{"Limit":1}"#;
        request
            .headers_mut()
            .insert("content-length", harmless.len().to_string());
        *request.body_mut() = harmless.to_owned().into();
        self.injecting.store(true, Ordering::SeqCst);
        self.injected.fetch_add(1, Ordering::SeqCst);
        self.actions
            .store(u32::try_from(actions).unwrap_or(0), Ordering::SeqCst);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !self.injecting.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let actions = self.actions.load(Ordering::SeqCst) as usize;
        // Markers come first and are fine; the caller's write (last) is
        // the item another transaction holds.
        let mut reasons = vec![serde_json::json!({"Code": "None"}); actions.saturating_sub(1)];
        reasons.push(serde_json::json!({
            "Code": "TransactionConflict",
            "Message": "Transaction is ongoing for the item"
        }));
        let body = serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
            "CancellationReasons": reasons,
        })
        .to_string();
        let response = context.response_mut();
        *response.status_mut() = 400u16.try_into()?;
        response
            .headers_mut()
            .insert("content-length", body.len().to_string());
        *response.body_mut() = body.into();
        Ok(())
    }
}

fn idem(client: Client, h: &Harness, conflict_retries: u32) -> Idempotency {
    let mut config = IdempotencyConfig::new(&h.tables.idempotency)
        .namespace("ingest")
        .marker_expiry(Duration::from_secs(35 * 24 * 3600));
    config.conflict_retries = conflict_retries;
    config.conflict_backoff = Duration::from_millis(200);
    Idempotency::new(client, config)
}

fn injecting_client(h: &Harness, conflicts: &Conflicts) -> Client {
    let conf = local_config(&h.endpoint, TEST_REGION)
        .interceptor(conflicts.clone())
        .build();
    Client::from_conf(conf)
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("evt-{i:05}")).collect()
}

/// One `ADD` to a single counter item shared by every batch.
fn counter(table: &str, chunk: &[String]) -> Result<Vec<TransactWriteItem>, String> {
    let update = Update::builder()
        .table_name(table)
        .key("pk", AttributeValue::S("counter".into()))
        .key("sk", AttributeValue::S("total".into()))
        .update_expression("ADD #n :k")
        .expression_attribute_names("#n", "n")
        .expression_attribute_values(":k", AttributeValue::N(chunk.len().to_string()))
        .build()
        .map_err(|e| e.to_string())?;
    Ok(vec![TransactWriteItem::builder().update(update).build()])
}

async fn counted(client: &Client, table: &str) -> u64 {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("counter".into()))
        .key("sk", AttributeValue::S("total".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item()
        .and_then(|i| i.get("n"))
        .map_or(0, |n| n.as_n().unwrap().parse().unwrap())
}

#[tokio::test]
async fn a_conflicted_batch_retries_and_finds_the_racing_batch_s_ids_duplicate() {
    let h = Harness::new("idem-conflict-retry").await;
    let client = h.client();
    let usage = h.tables.usage.clone();
    let conflicts = Conflicts::on(&[0]);
    let a = idem(injecting_client(&h, &conflicts), &h, 8);
    let b = idem(client.clone(), &h, 8);
    // A: ids 0..60; B: ids 30..90, on the same markers 30..60 and counter.
    let (usage_a, ids_a) = (usage.clone(), ids(0..60));
    let task_a =
        tokio::spawn(async move { a.commit_batch(&ids_a, |c| counter(&usage_a, c)).await });
    // B commits while A backs off from its conflict.
    while conflicts.injected.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let out_b = b
        .commit_batch(&ids(30..90), |c| counter(&usage, c))
        .await
        .unwrap();
    assert_eq!((out_b.new.len(), out_b.transactions), (60, 1));
    let out_a = task_a.await.unwrap().unwrap();
    assert_eq!(conflicts.injected.load(Ordering::SeqCst), 1);
    // A's retry found B's markers: those ids are duplicates, the rest new.
    assert_eq!(out_a.new, ids(0..30));
    assert_eq!(out_a.duplicates, ids(30..60));
    assert_eq!(out_a.transactions, 1);
    // 3 requests for A: the conflicted one, the one cancelled on B's
    // markers, the commit.
    assert_eq!(conflicts.seen.load(Ordering::SeqCst), 3);
    assert_eq!(counted(&client, &usage).await, 90, "each id counted once");
}

#[tokio::test]
async fn without_retries_the_conflict_is_a_typed_error_and_a_retry_of_the_call_repairs_it() {
    let h = Harness::new("idem-conflict-error").await;
    let client = h.client();
    let usage = h.tables.usage.clone();
    // 150 ids: chunks of 99 ids + the counter, then 51 + the counter. The
    // second chunk's transaction conflicts.
    let conflicts = Conflicts::on(&[1]);
    let a = idem(injecting_client(&h, &conflicts), &h, 0);
    let b = idem(client.clone(), &h, 0);
    let batch = ids(0..150);
    let err = a
        .commit_batch(&batch, |c| counter(&usage, c))
        .await
        .unwrap_err();
    match &err {
        IdempotencyError::TransactionConflict {
            first_key,
            attempts,
        } => {
            assert_eq!(*attempts, 1);
            assert_eq!(first_key, &a.marker_key("evt-00099"));
        }
        other => panic!("expected TransactionConflict, got {other}"),
    }
    // The first chunk stays committed; nothing of the second is.
    assert_eq!(counted(&client, &usage).await, 99);
    assert_eq!(
        a.get_record(&a.marker_key("evt-00099")).await.unwrap(),
        None
    );
    // Meanwhile a racing batch commits part of the conflicted chunk.
    let out_b = b
        .commit_batch(&ids(120..160), |c| counter(&usage, c))
        .await
        .unwrap();
    assert_eq!(out_b.new.len(), 40);
    // The caller retries the whole call: no double effect, nothing lost.
    let out = a
        .commit_batch(&batch, |c| counter(&usage, c))
        .await
        .unwrap();
    assert_eq!(out.new, ids(99..120));
    assert_eq!(out.duplicates.len(), 99 + 30);
    assert_eq!(counted(&client, &usage).await, 160);
    assert_eq!(conflicts.injected.load(Ordering::SeqCst), 1);
}
