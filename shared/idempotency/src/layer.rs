//! The [`Idempotency`] handle: a DynamoDB client, a configuration and an
//! optional cache of completed records; the keys it computes for events;
//! and reading or deleting a record, for tools and tests.

use std::fmt;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use serde::Serialize;
use serde_json::Value;

use crate::cache::RecordCache;
use crate::config::IdempotencyConfig;
use crate::digest::hash_canonical;
use crate::error::IdempotencyError;
use crate::key::KeySelector;
use crate::record::{self, Record};

/// The key of one idempotent call, as computed from an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The record key: `<namespace>#v<version>#<sha256 hex>`.
    pub key: String,
    /// The payload fingerprint, when payload validation is configured.
    pub fingerprint: Option<String>,
}

/// Exactly-once execution on one DynamoDB table. Cheap to clone.
#[derive(Clone)]
pub struct Idempotency {
    pub(crate) client: Client,
    pub(crate) inner: Arc<Inner>,
}

/// What an [`Idempotency`] shares between its clones.
pub(crate) struct Inner {
    pub(crate) config: IdempotencyConfig,
    pub(crate) cache: Option<RecordCache>,
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Idempotency {
    /// An idempotency layer on `client` and `config.table`.
    pub fn new(client: Client, config: IdempotencyConfig) -> Self {
        let cache = (config.cache_capacity > 0).then(|| RecordCache::new(config.cache_capacity));
        Idempotency {
            client,
            inner: Arc::new(Inner { config, cache }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &IdempotencyConfig {
        &self.inner.config
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.config.clock.now_ms()
    }

    /// The key of an event, or `None` when the selector finds none.
    ///
    /// ```
    /// # async fn f() {
    /// use serde_json::json;
    /// use tollgate_idempotency::{Idempotency, IdempotencyConfig};
    /// let conf = aws_sdk_dynamodb::Config::builder()
    ///     .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
    ///     .build();
    /// let client = aws_sdk_dynamodb::Client::from_conf(conf);
    /// let idem = Idempotency::new(client, IdempotencyConfig::new("t").namespace("fn").key_path("id").unwrap());
    /// let key = idem.key_for(&json!({"id": 1, "other": 2})).unwrap().unwrap();
    /// assert!(key.key.starts_with("fn#v1#"));
    /// assert_eq!(key.key.len(), "fn#v1#".len() + 64);
    /// # }
    /// ```
    pub fn key_for<T: Serialize + ?Sized>(
        &self,
        event: &T,
    ) -> Result<Option<IdempotencyKey>, IdempotencyError> {
        let config = &self.inner.config;
        let codec = |e: serde_json::Error| IdempotencyError::Codec {
            key: String::new(),
            message: format!("cannot serialize the event: {e}"),
        };
        let needs_value = config.key_selector.needs_value()
            || config
                .payload_selector
                .as_ref()
                .is_some_and(KeySelector::needs_value);
        if needs_value {
            let value = serde_json::to_value(event).map_err(codec)?;
            return Ok(self.key_for_value(&value));
        }
        let Some(digest) = config.key_selector.digest_typed(event).map_err(codec)? else {
            return Ok(None);
        };
        let fingerprint = match &config.payload_selector {
            None => None,
            // The same part: its digest is the key's, computed once.
            Some(sel) if sel.same_as(&config.key_selector) => Some(digest.clone()),
            Some(sel) => Some(
                sel.digest_typed(event)
                    .map_err(codec)?
                    .unwrap_or_else(|| hash_canonical(&Value::Null)),
            ),
        };
        Ok(Some(IdempotencyKey {
            key: config.prefixed_key(&digest),
            fingerprint,
        }))
    }

    /// The key of an event already in JSON form.
    pub fn key_for_value(&self, event: &Value) -> Option<IdempotencyKey> {
        let config = &self.inner.config;
        let digest = config.key_selector.digest_value(event)?;
        let fingerprint = config.payload_selector.as_ref().map(|sel| {
            if sel.same_as(&config.key_selector) {
                digest.clone()
            } else {
                sel.digest_value(event)
                    .unwrap_or_else(|| hash_canonical(&Value::Null))
            }
        });
        Some(IdempotencyKey {
            key: config.prefixed_key(&digest),
            fingerprint,
        })
    }

    /// Reads the current record of a key (strongly consistent), whether or
    /// not it has expired; for tools and tests.
    pub async fn get_record(&self, key: &str) -> Result<Option<Record>, IdempotencyError> {
        let config = &self.inner.config;
        let names = &config.attributes;
        let out = self
            .client
            .get_item()
            .table_name(&config.table)
            .set_key(Some(record::key_item(key, names, &config.key_layout)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| IdempotencyError::dynamo("GetItem", key, &e))?;
        out.item()
            .map(|item| Record::from_item(item, names, &config.key_layout))
            .transpose()
            .map_err(|message| IdempotencyError::Codec {
                key: key.to_owned(),
                message,
            })
    }

    /// Deletes a key's record, whatever its state, and forgets it in the
    /// cache; for tools and tests.
    pub async fn delete_record(&self, key: &str) -> Result<(), IdempotencyError> {
        let config = &self.inner.config;
        if let Some(cache) = &self.inner.cache {
            cache.remove(key);
        }
        self.client
            .delete_item()
            .table_name(&config.table)
            .set_key(Some(record::key_item(
                key,
                &config.attributes,
                &config.key_layout,
            )))
            .send()
            .await
            .map_err(|e| IdempotencyError::dynamo("DeleteItem", key, &e))?;
        Ok(())
    }
}

impl IdempotencyKey {
    /// `PayloadMismatch` when both this call and `record` carry a payload
    /// fingerprint and they differ. Every record found (returned by a failed
    /// conditional write, or in the cache) passes here before its response
    /// is replayed or it is cached.
    pub(crate) fn check_fingerprint<E>(&self, record: &Record) -> Result<(), IdempotencyError<E>> {
        match (&self.fingerprint, &record.validation) {
            (Some(mine), Some(stored)) if mine != stored => {
                Err(IdempotencyError::PayloadMismatch {
                    key: self.key.clone(),
                })
            }
            _ => Ok(()),
        }
    }
}
