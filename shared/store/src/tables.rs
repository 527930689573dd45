//! Table definitions as data: the CLI creates tables from them, and a test
//! compares them with `template.yaml`, so the two cannot drift.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use crate::StoreError;

/// How one table is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// The logical name, as in `template.yaml` (`KeysTable`, ...).
    pub logical_id: &'static str,
    /// The environment variable that names the table at run time.
    pub env_var: &'static str,
    /// The table name used when the variable is unset (local runs).
    pub default_name: &'static str,
    /// The partition key (a string).
    pub hash_key: &'static str,
    /// The sort key (a string), if any.
    pub range_key: Option<&'static str>,
    /// The TTL attribute (epoch seconds), if any.
    pub ttl_attribute: Option<&'static str>,
    /// Whether the table has a stream of new and old images (the old image
    /// tells quota-sync which of a month item's counters changed).
    pub stream: bool,
    /// Global secondary indexes.
    pub indexes: &'static [IndexSpec],
}

/// A global secondary index with a string hash key, a number range key
/// and a keys-only projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index name.
    pub name: &'static str,
    /// The hash key (a string); items without it are not in the index.
    pub hash_key: &'static str,
    /// The range key (a number).
    pub range_key: &'static str,
}

/// The Usage table's sparse "top" index: hash `top` =
/// `<meter>#<window>#<period>#<region>` (set on month counters only, see
/// `usage::top_key`), range `n` (the counter), keys only. It
/// answers "the largest counters of a meter in a period" without a Scan.
pub const USAGE_TOP_INDEX: IndexSpec = IndexSpec {
    name: "top",
    hash_key: "top",
    range_key: "n",
};

/// API keys by digest, plans, meters, customers' key lists and blocks.
pub const KEYS: TableSpec = TableSpec {
    logical_id: "KeysTable",
    env_var: "TOLLGATE_KEYS_TABLE",
    default_name: "tollgate-keys",
    hash_key: "pk",
    range_key: Some("sk"),
    ttl_attribute: Some("ttl"),
    stream: false,
    indexes: &[],
};

/// One counter per meter, identity, period and region.
pub const USAGE: TableSpec = TableSpec {
    logical_id: "UsageTable",
    env_var: "TOLLGATE_USAGE_TABLE",
    default_name: "tollgate-usage",
    hash_key: "pk",
    range_key: Some("sk"),
    ttl_attribute: Some("ttl"),
    stream: true,
    indexes: &[USAGE_TOP_INDEX],
};

/// Idempotency records (dedupe markers and leases).
pub const IDEMPOTENCY: TableSpec = TableSpec {
    logical_id: "IdempotencyTable",
    env_var: "TOLLGATE_IDEMPOTENCY_TABLE",
    default_name: "tollgate-idempotency",
    hash_key: "id",
    range_key: None,
    ttl_attribute: Some("expiration"),
    stream: false,
    indexes: &[],
};

/// Every table tollgate uses.
pub const TABLES: [TableSpec; 3] = [KEYS, USAGE, IDEMPOTENCY];

impl TableSpec {
    /// The table's name: the environment variable, or the default.
    pub fn name_from_env(&self) -> String {
        std::env::var(self.env_var)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| self.default_name.to_owned())
    }

    /// The table's name in a deployed stack of stage `stage`: the template
    /// names every table `<default_name>-<stage>` (`tollgate-keys-prod`).
    pub fn name_for_stage(&self, stage: &str) -> String {
        format!("{}-{stage}", self.default_name)
    }

    /// The stack output that holds the table's name (`KeysTableName`).
    pub fn output_key(&self) -> String {
        format!("{}Name", self.logical_id)
    }

    /// Creates the table as specified (on-demand billing), waits until it is
    /// active and enables TTL. Succeeds if the table exists already.
    pub async fn create(&self, client: &Client, name: &str) -> Result<bool, StoreError> {
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest);
        for (attr, key_type) in [
            (Some(self.hash_key), KeyType::Hash),
            (self.range_key, KeyType::Range),
        ] {
            let Some(attr) = attr else { continue };
            req = req
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(attr)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(|e| StoreError::dynamo("CreateTable", e))?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(attr)
                        .key_type(key_type)
                        .build()
                        .map_err(|e| StoreError::dynamo("CreateTable", e))?,
                );
        }
        for index in self.indexes {
            let def = |name: &str, kind| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(kind)
                    .build()
                    .map_err(|e| StoreError::dynamo("CreateTable", e))
            };
            let key = |name: &str, kind| {
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .map_err(|e| StoreError::dynamo("CreateTable", e))
            };
            req = req
                .attribute_definitions(def(index.hash_key, ScalarAttributeType::S)?)
                .attribute_definitions(def(index.range_key, ScalarAttributeType::N)?)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(index.name)
                        .key_schema(key(index.hash_key, KeyType::Hash)?)
                        .key_schema(key(index.range_key, KeyType::Range)?)
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::KeysOnly)
                                .build(),
                        )
                        .build()
                        .map_err(|e| StoreError::dynamo("CreateTable", e))?,
                );
        }
        if self.stream {
            req = req.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(|e| StoreError::dynamo("CreateTable", e))?,
            );
        }
        let created = match req.send().await {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                false
            }
            Err(e) => return Err(StoreError::dynamo("CreateTable", e)),
        };
        self.wait_active(client, name).await?;
        if let (true, Some(ttl)) = (created, self.ttl_attribute) {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(ttl)
                        .enabled(true)
                        .build()
                        .map_err(|e| StoreError::dynamo("UpdateTimeToLive", e))?,
                )
                .send()
                .await
                .map_err(|e| StoreError::dynamo("UpdateTimeToLive", e))?;
        }
        Ok(created)
    }

    async fn wait_active(&self, client: &Client, name: &str) -> Result<(), StoreError> {
        for _ in 0..100 {
            let out = client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("DescribeTable", e))?;
            let status = out.table().and_then(|t| t.table_status());
            if status.is_some_and(|s| s.as_str() == "ACTIVE") {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(StoreError::Dynamo {
            operation: "DescribeTable",
            message: format!("table {name} did not become active"),
        })
    }
}

/// The table names one function uses, read once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub keys: String,
    pub usage: String,
    pub idempotency: String,
}

impl TableNames {
    /// Names from `TOLLGATE_*_TABLE`, or the defaults.
    pub fn from_env() -> Self {
        TableNames {
            keys: KEYS.name_from_env(),
            usage: USAGE.name_from_env(),
            idempotency: IDEMPOTENCY.name_from_env(),
        }
    }

    /// The names the template gives the tables of stage `stage`.
    pub fn for_stage(stage: &str) -> Self {
        TableNames {
            keys: KEYS.name_for_stage(stage),
            usage: USAGE.name_for_stage(stage),
            idempotency: IDEMPOTENCY.name_for_stage(stage),
        }
    }

    /// The names from a stack's outputs (`KeysTableName`, ...), looked up
    /// by `output`; the error names the first output that is missing.
    pub fn from_outputs(output: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |spec: &TableSpec| {
            let key = spec.output_key();
            output(&key).filter(|v| !v.is_empty()).ok_or(key)
        };
        Ok(TableNames {
            keys: get(&KEYS)?,
            usage: get(&USAGE)?,
            idempotency: get(&IDEMPOTENCY)?,
        })
    }

    /// Names with a common prefix, for tests that need their own tables.
    pub fn prefixed(prefix: &str) -> Self {
        TableNames {
            keys: format!("{prefix}-keys"),
            usage: format!("{prefix}-usage"),
            idempotency: format!("{prefix}-idempotency"),
        }
    }

    /// The name of the table that `spec` describes.
    pub fn name_of(&self, spec: &TableSpec) -> &str {
        match spec.logical_id {
            "KeysTable" => &self.keys,
            "UsageTable" => &self.usage,
            _ => &self.idempotency,
        }
    }
}
