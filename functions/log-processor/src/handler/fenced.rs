//! Exactly once without dedupe records, for Kinesis batches
//! (`TOLLGATE_KINESIS_DEDUPE=watermark`): each Usage item of a batch is
//! raised with one conditional update past its per-shard watermark (see
//! [`tollgate_core::watermark`]).

use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::event::kinesis::KinesisEvent;
use futures::StreamExt;
use tollgate_core::{Aggregation, Cell, Contributions, ItemKey, Position, UnixMillis, UsageKey};
use tollgate_store::usage::{Expect, Fence, Fenced, ItemAdds};
use tollgate_store::StoreError;

use super::{now_millis, Processor};
use crate::batch::WritePlan;
use crate::summary::Summary;

impl Processor {
    /// Applies a Kinesis batch with per-shard watermarks: the increments of
    /// all its records are summed per counter, and each Usage item (a month
    /// and its days) is raised with one conditional update past its
    /// watermark (see [`tollgate_core::watermark`]). Returns the sequence
    /// numbers to report as failed: for an item whose update failed, its
    /// earliest record, so that Lambda retries from there and the
    /// watermarks skip what was already counted.
    pub(super) async fn apply_fenced(
        &self,
        shard: &str,
        plans: &[(String, WritePlan)],
        summary: &mut Summary,
    ) -> Vec<String> {
        let now = now_millis();
        let mut failures = Vec::new();
        let mut items: BTreeMap<ItemKey, FencedItem<'_>> = BTreeMap::new();
        let mut maxes = Vec::new();
        for (seq, plan) in plans {
            let position = match Position::of_sequence(seq) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(sequence_number = %seq, error = %e, "Kinesis record rejected; nothing of it was written");
                    failures.push(seq.clone());
                    continue;
                }
            };
            summary.increments += plan
                .chunks
                .iter()
                .map(|c| c.increments.len() as u64)
                .sum::<u64>();
            // API keys' items only: anonymous buckets are written with markers.
            for (key, aggregation, amount) in plan.chunks.iter().flat_map(|c| c.increments.iter()) {
                items
                    .entry(key.item())
                    .or_insert_with(|| FencedItem {
                        key,
                        aggregation: *aggregation,
                        cells: Vec::new(),
                        index: HashMap::new(),
                        first_seq: seq.as_str(),
                    })
                    .add(key.cell(), position.clone(), *amount);
            }
            maxes.extend(
                plan.maxes
                    .iter()
                    .map(|(key, value)| (key, *value, seq.as_str())),
            );
        }
        let updates: Vec<_> = items
            .values()
            .map(|item| async move {
                let result = self.add_past_watermark(shard, item, now).await;
                (result, item.first_seq)
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(updates)
            .buffer_unordered(FENCED_CONCURRENCY)
            .collect()
            .await;
        let mut first_error = None;
        for (result, first_seq) in results {
            match result {
                Ok(true) => summary.fenced_updates += 1,
                Ok(false) => summary.fenced_duplicates += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                    failures.push(first_seq.to_owned());
                }
            }
        }
        for (key, value, seq) in maxes {
            match self.usage.raise_max(key, value, now).await {
                Ok(_) => summary.max_updates += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                    failures.push(seq.to_owned());
                }
            }
        }
        if let Some(e) = first_error {
            tracing::error!(error = %e, failed = failures.len(), "writing usage failed; Lambda retries from the earliest failed record");
        }
        failures
    }

    /// Adds what the item's contributions hold past its watermark. Returns
    /// whether anything was added (false: the batch was counted before).
    async fn add_past_watermark(
        &self,
        shard: &str,
        item: &FencedItem<'_>,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let contributions = || item.cells.iter().map(|(_, c)| c);
        let (Some(first), Some(last)) = (
            contributions().filter_map(Contributions::first).min(),
            contributions().filter_map(Contributions::last).max(),
        ) else {
            return Ok(false);
        };
        // A refusal names the stored watermark; a partly counted batch is
        // then retried for the rest, conditional on exactly that watermark.
        // Records of one shard arrive in order, so repeated refusals only
        // come from a concurrent writer of the same shard: give up then.
        let mut stored: Option<Position> = None;
        for attempt in 0..3 {
            let expect = if attempt == 0 {
                Expect::Below(first)
            } else {
                Expect::Exactly(stored.as_ref())
            };
            let adds = ItemAdds {
                item: item.key.clone(),
                aggregation: item.aggregation,
                adds: item
                    .cells
                    .iter()
                    .map(|(cell, c)| {
                        let amount = if attempt == 0 {
                            c.total()
                        } else {
                            c.after(stored.as_ref())
                        };
                        (cell, amount)
                    })
                    .filter(|(_, amount)| *amount > 0)
                    .map(|(cell, amount)| (cell.clone(), amount))
                    .collect(),
            };
            if adds.adds.is_empty() {
                return Ok(false);
            }
            let fence = Fence {
                attribute: shard,
                expect,
                to: last,
            };
            match self.usage.add_fenced(&adds, fence, now).await? {
                Fenced::Applied => return Ok(true),
                Fenced::Refused { watermark } => stored = watermark,
            }
        }
        Err(StoreError::Malformed {
            table: "Usage",
            message: format!("the watermark {shard} of {} keeps moving: is the shard processed concurrently (parallelization factor above 1)?", item.key.sk()),
        })
    }
}

/// One Usage item's share of a Kinesis batch: per counter in it, what each
/// record of the batch adds.
struct FencedItem<'a> {
    key: &'a UsageKey,
    aggregation: Aggregation,
    cells: Vec<(Cell, Contributions)>,
    /// Where each cell is in `cells` (no linear search).
    index: HashMap<Cell, usize>,
    /// The earliest record that adds to the item (reported if it fails).
    first_seq: &'a str,
}

impl FencedItem<'_> {
    fn add(&mut self, cell: Cell, at: Position, amount: u64) {
        match self.index.get(&cell) {
            Some(&i) => self.cells[i].1.add(at, amount),
            None => {
                let mut contributions = Contributions::new();
                contributions.add(at, amount);
                self.index.insert(cell.clone(), self.cells.len());
                self.cells.push((cell, contributions));
            }
        }
    }
}

/// How many fenced counter updates run at once.
const FENCED_CONCURRENCY: usize = 16;

/// The Usage item attribute holding a Kinesis shard's watermark:
/// `w:` and 12 hex digits of SHA-256 over the stream ARN and the shard id
/// (a short name keeps the item under one write unit).
pub fn shard_attribute(event: &KinesisEvent) -> String {
    use sha2::{Digest, Sha256};
    let (arn, shard) = event
        .records
        .first()
        .map(|r| {
            let arn = r.event_source_arn.as_deref().unwrap_or("");
            let shard = r
                .event_id
                .as_deref()
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("");
            (arn, shard)
        })
        .unwrap_or_default();
    let digest = Sha256::digest(format!("{arn}\0{shard}").as_bytes());
    format!("w:{}", &hex::encode(digest)[..12])
}
