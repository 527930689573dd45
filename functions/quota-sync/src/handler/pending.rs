//! Copies a peer did not take, on a path of their own: kept as pending
//! copies (`tollgate_store::PendingCopies`) instead of failing their stream
//! records, and retried per peer after a back-off, or at once on the
//! scheduled retry event.

use std::collections::HashMap;
use std::sync::MutexGuard;

use futures::stream::{self, StreamExt};
use tollgate_core::{Region, UnixMillis};
use tollgate_store::usage::UsageItem;
use tollgate_store::StoreError;
use tracing::debug;

use super::{Collapsed, Peer, QuotaSync, Stats, CONCURRENCY};

/// A peer's pending copies are retried at most this many at a time.
const PENDING_PAGE: i32 = 100;
/// After a failed retry, a peer's pending copies wait this long (doubling
/// up to [`MAX_PENDING_BACKOFF_MS`]) before an invocation tries them again.
const PENDING_BACKOFF_MS: i64 = 15_000;
const MAX_PENDING_BACKOFF_MS: i64 = 300_000;
/// When a peer's pending copies are next tried, and the last back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retry {
    next: UnixMillis,
    backoff: i64,
}

impl Retry {
    /// The last retry left nothing pending: only a new failure (or the
    /// scheduled retry event) makes the peer due again.
    const NOTHING_PENDING: Retry = Retry {
        next: i64::MAX,
        backoff: 0,
    };
}

impl QuotaSync {
    /// Keeps the copies `missed` (indexes into `own`) for `peer`, and has
    /// its pending copies tried again after the back-off.
    pub(super) async fn keep_pending(
        &self,
        peer: &Region,
        own: &[&Collapsed],
        missed: &[usize],
    ) -> Vec<(usize, Result<(), StoreError>)> {
        if missed.is_empty() {
            return Vec::new();
        }
        self.schedule_retry(peer);
        let keeps: Vec<_> = missed
            .iter()
            .map(|&i| async move { (i, self.pending.keep(peer, &own[i].item).await) })
            .collect();
        stream::iter(keeps).buffered(CONCURRENCY).collect().await
    }

    /// Retries the pending copies of every peer that is due (all of them
    /// when `now`), a page per peer.
    pub(super) async fn retry_pending(&self, now: bool, stats: &mut Stats) {
        let at = self.clock.now_millis();
        let due: Vec<&Peer> = {
            let retry_at = self.retry_at();
            self.peers
                .iter()
                .filter(|p| now || retry_at.get(&p.region).is_none_or(|r| r.next <= at))
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let results = futures::future::join_all(due.iter().map(|peer| self.retry_peer(peer))).await;
        let mut retry_at = self.retry_at();
        for (peer, (retried, delivered, outcome)) in due.into_iter().zip(results) {
            stats.pending_retried += retried;
            stats.pending_delivered += delivered;
            let last = retry_at.get(&peer.region).map_or(0, |r| r.backoff);
            let next = match outcome {
                Ok(true) => Retry {
                    next: at,
                    backoff: 0,
                },
                Ok(false) => Retry::NOTHING_PENDING,
                Err(e) => {
                    debug!(peer = %peer.region, error = %e, "pending copies still fail");
                    let backoff = (last * 2).clamp(PENDING_BACKOFF_MS, MAX_PENDING_BACKOFF_MS);
                    Retry {
                        next: at + backoff,
                        backoff,
                    }
                }
            };
            retry_at.insert(peer.region.clone(), next);
        }
    }

    /// One page of `peer`'s pending copies: how many were tried and
    /// delivered, and whether more remain (or the error that stopped it).
    async fn retry_peer(&self, peer: &Peer) -> (usize, usize, Result<bool, StoreError>) {
        let page = match self.pending.list(&peer.region, PENDING_PAGE).await {
            Ok(page) => page,
            Err(e) => return (0, 0, Err(e)),
        };
        let full = page.len() == usize::try_from(PENDING_PAGE).unwrap_or(usize::MAX);
        let mut delivered = 0;
        for item in &page {
            if let Err(e) = self.deliver(peer, item).await {
                return (delivered + 1, delivered, Err(e));
            }
            delivered += 1;
        }
        (page.len(), delivered, Ok(full))
    }

    /// Copies a pending copy to its peer, then forgets it.
    async fn deliver(&self, peer: &Peer, item: &UsageItem) -> Result<(), StoreError> {
        peer.usage.put_replica(item).await?;
        self.pending.done(&peer.region, item).await
    }

    /// After a copy to `peer` was kept as pending: have it retried after
    /// the base back-off, unless a retry is scheduled already.
    fn schedule_retry(&self, peer: &Region) {
        let next = Retry {
            next: self.clock.now_millis() + PENDING_BACKOFF_MS,
            backoff: PENDING_BACKOFF_MS,
        };
        let mut retry_at = self.retry_at();
        let entry = retry_at.entry(peer.clone()).or_insert(next);
        if *entry == Retry::NOTHING_PENDING {
            *entry = next;
        }
    }

    fn retry_at(&self) -> MutexGuard<'_, HashMap<Region, Retry>> {
        self.retry_at.lock().unwrap_or_else(|e| e.into_inner())
    }
}
