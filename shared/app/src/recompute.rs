//! Recomputing blocks after plans change: every current block is checked
//! against the identity's current plan and the counter's global value (one
//! Query per counter); blocks no longer justified are removed, missing or
//! changed ones written. It runs in one region, on that region's tables
//! (`tollgate recompute-blocks`), through the store's ports.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use tollgate_core::{Aggregation, Block, CounterKey, Identity, Plan, UnixMillis, Window};
use tollgate_store::usage::UsageItem;
use tollgate_store::{
    BlockRecords, KeyLookup, KeyPlans, PeriodScan, PlanSource, StoreError, UsageRange,
};

use tollgate_core::blocking::{block_for, global_value};

/// What to recompute.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this identity; `None`: every identity with a block, and every
    /// identity with usage in a current period that a hard plan limits.
    pub identity: Option<Identity>,
    /// Report what would change, change nothing.
    pub dry_run: bool,
}

/// One block decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockChange {
    /// Whose block.
    pub identity: Identity,
    /// The block (for a removal: the one removed).
    pub block: Block,
}

/// What a recomputation found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Counters checked (one Query each).
    pub checked: usize,
    /// Blocks that stay as they are.
    pub kept: Vec<BlockChange>,
    /// Blocks written (missing, or with a changed limit).
    pub written: Vec<BlockChange>,
    /// Blocks removed (no longer justified).
    pub removed: Vec<BlockChange>,
}

/// Recomputes the blocks of one region at time `now`, from its Keys table
/// (`keys`: plans, key plans, blocks) and Usage table (`usage`).
/// `anonymous_plan` names the plan of identities without a key.
pub async fn recompute<K, U>(
    keys: &K,
    usage: &U,
    anonymous_plan: &str,
    scope: &Scope,
    now: UnixMillis,
) -> Result<Report, StoreError>
where
    K: PlanSource + KeyLookup + KeyPlans + BlockRecords,
    U: UsageRange + PeriodScan,
{
    let plans: HashMap<String, Plan> = keys
        .list_plans()
        .await?
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    // The current blocks there are, by counter.
    let existing: Vec<(Identity, Vec<Block>)> = match &scope.identity {
        Some(id) => vec![(
            id.clone(),
            keys.lookup(None, std::slice::from_ref(id)).await?.1,
        )],
        None => keys.list_blocks().await?,
    };
    let mut current: BTreeMap<CounterKey, Block> = BTreeMap::new();
    for (identity, blocks) in existing {
        for block in blocks.into_iter().filter(|b| b.is_current(now)) {
            let counter = CounterKey {
                meter: block.meter.clone(),
                identity: identity.clone(),
                period: block.period,
            };
            current.insert(counter, block);
        }
    }
    // The counters that might call for a block: those blocked now, and
    // those with usage in a current period of a window some hard plan limits.
    let mut candidates: BTreeSet<CounterKey> = current.keys().cloned().collect();
    let mut plan_names: HashMap<Identity, Option<String>> = HashMap::new();
    match &scope.identity {
        Some(identity) => {
            let name = plan_name(keys, anonymous_plan, identity, &mut plan_names).await?;
            if let Some(plan) = name.and_then(|n| plans.get(&n)).filter(|p| p.is_hard()) {
                for limit in &plan.limits {
                    candidates.insert(CounterKey {
                        meter: limit.meter.clone(),
                        identity: identity.clone(),
                        period: limit.window.period_of(now)?,
                    });
                }
            }
        }
        None => {
            let windows: BTreeSet<Window> = plans
                .values()
                .filter(|p| p.is_hard())
                .flat_map(|p| p.limits.iter().map(|l| l.window))
                .collect();
            let periods = windows
                .iter()
                .map(|w| w.period_of(now))
                .collect::<Result<Vec<_>, _>>()?;
            for item in usage.scan_periods(&periods).await? {
                candidates.insert(item.key.counter);
            }
        }
    }
    let mut report = Report::default();
    for counter in candidates {
        let name = plan_name(keys, anonymous_plan, &counter.identity, &mut plan_names).await?;
        let plan = name.and_then(|n| plans.get(&n));
        let items = counter_items(usage, &counter).await?;
        report.checked += 1;
        let aggregation = items
            .first()
            .map(|i| i.aggregation)
            .unwrap_or(Aggregation::Count);
        // A bucket's parts each hold a share: summed per region.
        let regions = tollgate_store::usage::sum_by_region(&items, &counter);
        let used = global_value(&regions, aggregation);
        let wanted = plan.and_then(|p| block_for(p, &counter, used));
        let change = |block: Block| BlockChange {
            identity: counter.identity.clone(),
            block,
        };
        match (current.remove(&counter), wanted) {
            (Some(old), None) => {
                if !scope.dry_run {
                    keys.remove_block(&counter.identity, &counter.meter, &counter.period)
                        .await?;
                }
                report.removed.push(change(old));
            }
            (Some(old), Some(new)) if old.limit == new.limit => report.kept.push(change(old)),
            (_, Some(new)) => {
                if !scope.dry_run {
                    keys.put_block(&counter.identity, &new).await?;
                }
                report.written.push(change(new));
            }
            (None, None) => {}
        }
    }
    Ok(report)
}

async fn plan_name<K: KeyPlans>(
    keys: &K,
    anonymous_plan: &str,
    identity: &Identity,
    cache: &mut HashMap<Identity, Option<String>>,
) -> Result<Option<String>, StoreError> {
    if let Some(name) = cache.get(identity) {
        return Ok(name.clone());
    }
    let name = match identity {
        Identity::Key(id) => keys.plan_of_key(id).await?,
        _ => Some(anonymous_plan.to_owned()),
    };
    cache.insert(identity.clone(), name.clone());
    Ok(name)
}

/// A counter's region items (one Query; a second page only past 1 MB).
async fn counter_items<U: UsageRange>(
    usage: &U,
    counter: &CounterKey,
) -> Result<Vec<UsageItem>, StoreError> {
    let prefix = counter.sk_prefix();
    // Region names are [a-z0-9-], all below '~'.
    let upper = format!("{prefix}~");
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let (page, next) = usage
            .query_prefix(&counter.pk(), &prefix, &upper, start, 100)
            .await?;
        items.extend(page.into_iter().filter(|i| i.key.counter == *counter));
        start = next;
        if start.is_none() {
            return Ok(items);
        }
    }
}
