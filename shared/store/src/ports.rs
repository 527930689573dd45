//! Ports: one narrow trait per role a handler needs from the store, in
//! domain types only (no SDK type in a signature), so a handler takes the
//! ports it uses and a test can hand it the in-memory adapter
//! ([`crate::memory`], feature `memory`) instead of DynamoDB.
//!
//! The DynamoDB adapter of both ports is [`KeysStore`]; its DynamoDB
//! behaviour (one request per lookup, unprocessed keys retried, then an
//! error) is tested against DynamoDB Local, never through the memory
//! adapter.
//!
//! The methods return `impl Future + Send` (what `async fn` desugars to,
//! with the `Send` bound written out, so a handler's future stays `Send`
//! however it is spawned); an adapter may implement them with `async fn`.

use std::future::Future;

use tollgate_core::{Block, Identity, KeyDigest, KeyRecord, Plan};

use crate::{KeysStore, StoreError};

/// What one lookup found: the key record (if a digest was given and the key
/// exists) and each identity's blocks, in the order asked.
pub type KeyAndBlocks = (Option<KeyRecord>, Vec<Vec<Block>>);

/// The authorizer's reads of keys and blocks: one round trip per call.
pub trait KeyLookup: Send + Sync {
    /// Reads, in one request, the key item of `digest` (if given) and the
    /// block items of `identities`: the key record (if found) and each
    /// identity's blocks, in the order of `identities`. Anything the store
    /// could not read is an error, never "absent".
    fn lookup_each(
        &self,
        digest: Option<&KeyDigest>,
        identities: &[Identity],
    ) -> impl Future<Output = Result<KeyAndBlocks, StoreError>> + Send;

    /// As [`KeyLookup::lookup_each`], with every identity's blocks in one list.
    fn lookup(
        &self,
        digest: Option<&KeyDigest>,
        identities: &[Identity],
    ) -> impl Future<Output = Result<(Option<KeyRecord>, Vec<Block>), StoreError>> + Send {
        async move {
            let (record, blocks) = self.lookup_each(digest, identities).await?;
            Ok((record, blocks.into_iter().flatten().collect()))
        }
    }
}

/// Where the plans come from.
pub trait PlanSource: Send + Sync {
    /// Every plan.
    fn list_plans(&self) -> impl Future<Output = Result<Vec<Plan>, StoreError>> + Send;
}

/// The Keys table (the inherent methods, which other crates call directly).
impl KeyLookup for KeysStore {
    fn lookup_each(
        &self,
        digest: Option<&KeyDigest>,
        identities: &[Identity],
    ) -> impl Future<Output = Result<KeyAndBlocks, StoreError>> + Send {
        // The inherent method (inherent methods take precedence over trait ones).
        KeysStore::lookup_each(self, digest, identities)
    }

    fn lookup(
        &self,
        digest: Option<&KeyDigest>,
        identities: &[Identity],
    ) -> impl Future<Output = Result<(Option<KeyRecord>, Vec<Block>), StoreError>> + Send {
        KeysStore::lookup(self, digest, identities)
    }
}

impl PlanSource for KeysStore {
    fn list_plans(&self) -> impl Future<Output = Result<Vec<Plan>, StoreError>> + Send {
        KeysStore::list_plans(self)
    }
}
