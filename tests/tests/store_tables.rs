//! DynamoDB behaviour tollgate relies on, checked against DynamoDB Local:
//! tables as `shared/store` describes them, conditional puts that return
//! the old item, and transactions cancelled with reasons.

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, StreamViewType, TransactWriteItem,
};
use tollgate_store::{KEYS, TABLES};
use tollgate_tests::Harness;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

#[tokio::test]
async fn tables_are_created_as_the_store_describes_them() {
    let h = Harness::new("tables").await;
    let client = h.client();
    for spec in TABLES {
        let name = h.tables.name_of(&spec);
        let table = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .unwrap();
        let table = table.table().unwrap();
        let keys: Vec<(String, String)> = table
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect();
        let mut expected = vec![(spec.hash_key.to_owned(), "HASH".to_owned())];
        if let Some(range) = spec.range_key {
            expected.push((range.to_owned(), "RANGE".to_owned()));
        }
        assert_eq!(keys, expected, "{name}");
        let stream = table.stream_specification();
        assert_eq!(
            stream.is_some_and(|s| s.stream_enabled()),
            spec.stream,
            "{name} stream"
        );
        if spec.stream {
            assert_eq!(
                stream.and_then(|s| s.stream_view_type()),
                Some(&StreamViewType::NewAndOldImages)
            );
        }
        let ttl = client
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .unwrap();
        let ttl_attr = ttl
            .time_to_live_description()
            .and_then(|d| d.attribute_name());
        assert_eq!(ttl_attr, spec.ttl_attribute, "{name} ttl");
    }
}

#[tokio::test]
async fn creating_an_existing_table_is_not_an_error() {
    let h = Harness::new("recreate").await;
    let created = KEYS.create(&h.client(), &h.tables.keys).await.unwrap();
    assert!(!created, "the table existed already");
}

#[tokio::test]
async fn a_conditional_put_on_an_existing_key_returns_the_old_item() {
    let h = Harness::new("condput").await;
    let client = h.client();
    let table = &h.tables.idempotency;
    client
        .put_item()
        .table_name(table)
        .item("id", s("a"))
        .item("v", s("first"))
        .send()
        .await
        .unwrap();
    let err = client
        .put_item()
        .table_name(table)
        .item("id", s("a"))
        .item("v", s("second"))
        .condition_expression("attribute_not_exists(id)")
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .unwrap_err();
    let service = err.into_service_error();
    assert!(
        service.is_conditional_check_failed_exception(),
        "{service:?}"
    );
    let aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(ccf) =
        service
    else {
        unreachable!()
    };
    assert_eq!(ccf.item().and_then(|i| i.get("v")), Some(&s("first")));
}

#[tokio::test]
async fn a_transaction_with_a_failing_condition_is_cancelled_with_reasons() {
    let h = Harness::new("txn").await;
    let client = h.client();
    let table = &h.tables.idempotency;
    client
        .put_item()
        .table_name(table)
        .item("id", s("taken"))
        .send()
        .await
        .unwrap();
    let put = |id: &str| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(table)
                    .item("id", s(id))
                    .condition_expression("attribute_not_exists(id)")
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let err = client
        .transact_write_items()
        .transact_items(put("new"))
        .transact_items(put("taken"))
        .send()
        .await
        .unwrap_err();
    let service = err.into_service_error();
    let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(tce) = service else {
        panic!("expected a cancelled transaction, got {service:?}");
    };
    let codes: Vec<&str> = tce
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or(""))
        .collect();
    assert_eq!(codes, ["None", "ConditionalCheckFailed"]);
    // Nothing of the cancelled transaction was written.
    let got = client
        .get_item()
        .table_name(table)
        .key("id", s("new"))
        .send()
        .await
        .unwrap();
    assert!(got.item().is_none());
}

#[tokio::test]
async fn the_request_counter_counts_requests_and_capacity() {
    let h = Harness::new("counter").await;
    let (client, counter) = h.counted_client(true);
    let table = &h.tables.idempotency;
    client
        .put_item()
        .table_name(table)
        .item("id", s("a"))
        .send()
        .await
        .unwrap();
    client
        .get_item()
        .table_name(table)
        .key("id", s("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(counter.requests("PutItem"), 1);
    assert_eq!(counter.requests("GetItem"), 1);
    assert_eq!(counter.total_requests(), 2);
    let (read, write) = counter.total_units();
    assert_eq!(write, 1.0, "a small put is one write unit");
    assert_eq!(
        read, 0.5,
        "an eventually consistent small read is half a read unit"
    );
}

#[tokio::test]
async fn the_request_counter_bills_transactions_per_item() {
    let h = Harness::new("txncount").await;
    let (client, counter) = h.counted_client(true);
    let table = &h.tables.idempotency;
    let put = |id: &str| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(table)
                    .item("id", s(id))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    client
        .transact_write_items()
        .transact_items(put("a"))
        .transact_items(put("b"))
        .transact_items(put("c"))
        .send()
        .await
        .unwrap();
    // DynamoDB bills 2 write units per item of a transaction (DynamoDB Local reports 2 in all).
    assert_eq!(counter.total_units(), (0.0, 6.0));
    assert_eq!(counter.requests("TransactWriteItems"), 1);
}
