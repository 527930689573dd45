//! Reading a dead-lettered range back from its Kinesis stream.

use anyhow::{bail, Context, Result};
use aws_config::{Region, SdkConfig};
use aws_sdk_kinesis::types::ShardIteratorType;

use super::record::{KinesisBatch, StreamRecord};

/// At most this many `GetRecords` calls for one range (a range is one
/// failed batch: at most 10,000 records, 10,000 per call).
const MAX_CALLS: usize = 1000;

/// The records of `batch`, in order, read from the stream in the ARN's
/// region. A range the stream no longer holds (past its retention) is an
/// error: the message stays in the queue for an operator to look at.
pub async fn read_range(sdk: &SdkConfig, batch: &KinesisBatch) -> Result<Vec<StreamRecord>> {
    let (stream, region) = batch.stream_name_and_region()?;
    let conf = aws_sdk_kinesis::config::Builder::from(sdk)
        .region(Region::new(region.to_owned()))
        .build();
    let client = aws_sdk_kinesis::Client::from_conf(conf);
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(&batch.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&batch.start)
        .send()
        .await
        .with_context(|| {
            format!(
                "reading {stream} {} from {} (past the stream's retention?)",
                batch.shard_id, batch.start
            )
        })?
        .shard_iterator
        .map(|s| s.to_owned());
    let mut records = Vec::new();
    let mut calls = 0;
    'read: while let Some(it) = iterator.take() {
        calls += 1;
        if calls > MAX_CALLS {
            bail!(
                "{stream} {}: the range did not end within {MAX_CALLS} reads",
                batch.shard_id
            );
        }
        let out = client
            .get_records()
            .shard_iterator(it)
            .limit(10_000)
            .send()
            .await
            .with_context(|| format!("reading {stream} {}", batch.shard_id))?;
        for r in out.records() {
            let seq = r.sequence_number();
            if batch.is_past(seq) {
                break 'read;
            }
            if batch.contains(seq) {
                records.push(StreamRecord {
                    sequence_number: seq.to_owned(),
                    partition_key: r.partition_key().unwrap_or_default().to_owned(),
                    data: r.data().as_ref().to_vec(),
                    arrival: r
                        .approximate_arrival_timestamp()
                        .map_or(0.0, |t| t.as_secs_f64()),
                });
            }
            if seq == batch.end {
                break 'read;
            }
        }
        let caught_up = out.millis_behind_latest() == Some(0) && out.records().is_empty();
        if caught_up {
            break;
        }
        iterator = out.next_shard_iterator().map(str::to_owned);
    }
    if records.first().map(|r| r.sequence_number.as_str()) != Some(batch.start.as_str()) {
        bail!(
            "{stream} {} no longer holds {} (trimmed past its retention?)",
            batch.shard_id,
            batch.start
        );
    }
    if batch.size > 0 && records.len() as u64 != batch.size {
        tracing::warn!(
            read = records.len(),
            expected = batch.size,
            "the range read back differs from the batch size the record states"
        );
    }
    Ok(records)
}
