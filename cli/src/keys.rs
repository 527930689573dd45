//! `tollgate keys create|roll|revoke|list|show`: customers' API keys.
//!
//! A key's secret is printed once, at creation; the table keeps only its
//! SHA-256 digest, so a lost secret cannot be shown again (create a new key
//! and revoke the old one).

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use rand::RngCore;
use tollgate_core::{ApiKey, Block, Identity, KeyDigest, KeyRecord, KeyStatus, UnixMillis};
use tollgate_store::{KeysStore, TableNames};

use crate::plans::find_plan;

mod roll;
pub use roll::{render_rolled, roll_key};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for a customer on a plan; prints its secret once.
    Create {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        plan: String,
        /// When the key stops working (RFC 3339, such as 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
        /// Print the new key as JSON (for scripts).
        #[arg(long)]
        json: bool,
        /// Store the key in each of these regions (keys are copied to every
        /// region at signup); default: the `--region` alone.
        #[arg(long, value_delimiter = ',')]
        regions: Vec<String>,
    },
    /// Give a key a new secret; prints it once. The old secret keeps
    /// working until the grace ends; both count to the same key id,
    /// customer, plan and limits.
    Roll {
        /// The key's id (`k_` and 16 hex digits).
        key_id: String,
        /// How long the old secret keeps working: such as 30m, 24h, 7d (at most 30d; 0 for none).
        #[arg(long)]
        grace: String,
        /// Print the new secret as JSON (for scripts).
        #[arg(long)]
        json: bool,
        /// Roll it in each of these regions (the same new secret and grace
        /// end); default: the `--region` alone.
        #[arg(long, value_delimiter = ',')]
        regions: Vec<String>,
    },
    /// Revoke a customer's key, every secret of it (takes effect within the authorizer's cache time).
    Revoke {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        key_id: String,
        /// Revoke it in each of these regions; default: the `--region` alone.
        #[arg(long, value_delimiter = ',')]
        regions: Vec<String>,
    },
    /// List a customer's keys.
    List {
        #[arg(long)]
        customer: String,
        /// Print a JSON array of `{key_id, status, plan}` instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one key: plan, status, expiry and current blocks.
    Show {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        key_id: String,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(client: &Client, names: &TableNames, command: KeysCommand) -> Result<()> {
    let store = KeysStore::new(client.clone(), names.keys.clone());
    let now = Utc::now().timestamp_millis();
    match command {
        KeysCommand::Create {
            customer,
            plan,
            expires,
            json,
            regions,
        } => {
            let expires_at = expires.as_deref().map(parse_expiry).transpose()?;
            let mut secret = [0u8; tollgate_core::apikey::SECRET_BYTES];
            rand::rng().fill_bytes(&mut secret);
            let mut created = None;
            let mut failed = Vec::new();
            let targets = stores(&store, names, &regions).await;
            for (i, store) in targets.iter().enumerate() {
                match create_key(store, &customer, &plan, expires_at, now, secret).await {
                    Ok(c) => created = Some(c),
                    // Nothing stored yet: the secret was never valid anywhere.
                    Err(e) if created.is_none() => return Err(e),
                    Err(e) => failed.push(format!(
                        "{}: {e:#}",
                        regions.get(i).map_or("?", String::as_str)
                    )),
                }
            }
            if let Some(created) = created {
                // Print the secret even when a later region failed: the key
                // exists in the earlier ones and is shown only now.
                println!("{}", render_created(&created, json));
            }
            if !failed.is_empty() {
                anyhow::bail!(
                    "the key was not stored in every region ({}); revoke it with `tollgate keys revoke --regions ...` or create it again",
                    failed.join("; ")
                );
            }
        }
        KeysCommand::Roll {
            key_id,
            grace,
            json,
            regions,
        } => {
            let mut secret = [0u8; tollgate_core::apikey::SECRET_BYTES];
            rand::rng().fill_bytes(&mut secret);
            let mut rolled = None;
            let mut failed = Vec::new();
            for (i, store) in stores(&store, names, &regions).await.iter().enumerate() {
                match roll_key(store, &key_id, &grace, now, secret).await {
                    Ok(r) => rolled = Some(r),
                    // Nothing stored yet: the new secret was never valid anywhere.
                    Err(e) if rolled.is_none() => return Err(e),
                    Err(e) => failed.push(format!(
                        "{}: {e:#}",
                        regions.get(i).map_or("?", String::as_str)
                    )),
                }
            }
            if let Some(rolled) = rolled {
                // Shown even when a later region failed: it works in the
                // earlier ones and is shown only now.
                println!("{}", render_rolled(&rolled, json));
            }
            if !failed.is_empty() {
                anyhow::bail!(
                    "the key was not rolled in every region ({}); the new secret works only where it was; roll again there or revoke the key",
                    failed.join("; ")
                );
            }
        }
        KeysCommand::Revoke {
            customer,
            key_id,
            regions,
        } => {
            for store in stores(&store, names, &regions).await {
                revoke_key(&store, &customer, &key_id).await?;
            }
            println!("revoked {key_id} of customer {customer}");
        }
        KeysCommand::List { customer, json } => {
            let rows = list_keys(&store, &customer).await?;
            if json {
                println!("{}", render_list_json(&rows));
            } else {
                print!("{}", render_list(&customer, &rows));
            }
        }
        KeysCommand::Show {
            customer,
            key_id,
            json,
        } => {
            let shown = show_key(&store, &customer, &key_id).await?;
            if json {
                println!("{}", render_shown_json(&shown, now));
            } else {
                print!("{}", render_shown(&shown, now));
            }
        }
    }
    Ok(())
}

/// The Keys tables of `regions`, or the default store when none are named.
async fn stores(default: &KeysStore, names: &TableNames, regions: &[String]) -> Vec<KeysStore> {
    if regions.is_empty() {
        return vec![default.clone()];
    }
    let mut out = Vec::new();
    for region in regions {
        let client = tollgate_store::client_from_env(Some(region)).await;
        out.push(KeysStore::new(client, names.keys.clone()));
    }
    out
}

/// A key just created: the only time its secret exists outside the client.
#[derive(Debug)]
pub struct Created {
    pub key: ApiKey,
    pub record: KeyRecord,
}

/// Checks a customer id: 1-128 characters of `A-Z a-z 0-9 _ - . @`
/// (it is part of the table's keys, so never `#`).
pub fn check_customer(customer: &str) -> Result<()> {
    let ok = !customer.is_empty()
        && customer.len() <= 128
        && customer
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b));
    if !ok {
        bail!("invalid customer {customer:?}: use 1-128 characters of A-Z, a-z, 0-9, '_', '-', '.' or '@'");
    }
    Ok(())
}

/// Reads `--expires` (RFC 3339) as epoch milliseconds.
pub fn parse_expiry(text: &str) -> Result<UnixMillis> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .with_context(|| {
            format!("invalid --expires {text:?}: use RFC 3339, such as 2027-01-01T00:00:00Z")
        })
}

pub(crate) fn rfc3339(ms: UnixMillis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Creates a key from `secret` (32 random bytes) for `customer` on `plan`,
/// which must exist. Stores only the digest.
pub async fn create_key(
    store: &KeysStore,
    customer: &str,
    plan: &str,
    expires_at: Option<UnixMillis>,
    now: UnixMillis,
    secret: [u8; tollgate_core::apikey::SECRET_BYTES],
) -> Result<Created> {
    check_customer(customer)?;
    if let Some(t) = expires_at {
        if t <= now {
            bail!("--expires {} is not in the future", rfc3339(t));
        }
    }
    find_plan(store, plan).await?;
    let key = ApiKey::generate(secret);
    let record = KeyRecord {
        key_id: key.key_id(),
        customer: customer.to_owned(),
        plan: plan.to_owned(),
        status: KeyStatus::Active,
        expires_at,
        valid_until: None,
    };
    store
        .create_key(&key.digest(), &record, now)
        .await
        .context("storing the key")?;
    Ok(Created { key, record })
}

/// What `keys create` prints: the key id and, once, the secret.
pub fn render_created(c: &Created, json: bool) -> String {
    if json {
        return serde_json::json!({
            "key_id": c.record.key_id,
            "secret": c.key.expose_secret(),
            "customer": c.record.customer,
            "plan": c.record.plan,
            "expires_at": c.record.expires_at.map(rfc3339),
        })
        .to_string();
    }
    let mut out = format!(
        "key id:   {}\ncustomer: {}\nplan:     {}\n",
        c.record.key_id, c.record.customer, c.record.plan
    );
    if let Some(t) = c.record.expires_at {
        out.push_str(&format!("expires:  {}\n", rfc3339(t)));
    }
    out.push_str(&format!(
        "secret:   {}\n\nThe secret is shown only now: tollgate stores only its SHA-256 digest.",
        c.key.expose_secret()
    ));
    out
}

/// One row of `keys list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub key_id: String,
    pub plan: String,
    pub status: String,
    digest: String,
}

/// A customer's keys, by key id.
pub async fn list_keys(store: &KeysStore, customer: &str) -> Result<Vec<KeyRow>> {
    check_customer(customer)?;
    let mut rows: Vec<KeyRow> = store
        .list_keys(customer)
        .await
        .context("listing keys")?
        .into_iter()
        .map(|(key_id, digest, plan, status)| KeyRow {
            key_id,
            plan,
            status,
            digest,
        })
        .collect();
    rows.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    Ok(rows)
}

pub fn render_list(customer: &str, rows: &[KeyRow]) -> String {
    if rows.is_empty() {
        return format!("customer {customer} has no keys\n");
    }
    let mut out = format!("{:<18}  {:<8}  PLAN\n", "KEY ID", "STATUS");
    for r in rows {
        out.push_str(&format!("{:<18}  {:<8}  {}\n", r.key_id, r.status, r.plan));
    }
    out
}

/// `keys list --json`: `[{"key_id","status","plan"}]`, by key id (the
/// digest stays out: it is the stored form of the secret).
pub fn render_list_json(rows: &[KeyRow]) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::json!({"key_id": r.key_id, "status": r.status, "plan": r.plan}))
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// Revokes a customer's key; an error if the customer has no such key.
pub async fn revoke_key(store: &KeysStore, customer: &str, key_id: &str) -> Result<()> {
    check_customer(customer)?;
    if !store
        .revoke_key(customer, key_id)
        .await
        .context("revoking the key")?
    {
        bail!("customer {customer} has no key {key_id}");
    }
    Ok(())
}

/// One key as `keys show` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub record: KeyRecord,
    pub blocks: Vec<Block>,
}

/// A customer's key with its current record and blocks (one BatchGetItem).
pub async fn show_key(store: &KeysStore, customer: &str, key_id: &str) -> Result<Shown> {
    let row = list_keys(store, customer)
        .await?
        .into_iter()
        .find(|r| r.key_id == key_id)
        .with_context(|| format!("customer {customer} has no key {key_id}"))?;
    let identity = Identity::key(key_id)?;
    let (record, blocks) = store
        .lookup(Some(&KeyDigest(row.digest)), &[identity])
        .await
        .context("reading the key")?;
    let record = record.with_context(|| {
        format!("the key item of {key_id} is missing (the customer index names it)")
    })?;
    Ok(Shown { record, blocks })
}

/// What `keys show` says of a key's status at `now`.
fn status_at(r: &KeyRecord, now: UnixMillis) -> &'static str {
    match r.status {
        KeyStatus::Revoked => "revoked",
        KeyStatus::Active if r.expires_at.is_some_and(|t| now >= t) => "expired",
        KeyStatus::Active => "active",
    }
}

/// `keys show --json`: the key's record, its status at `now` and its
/// current blocks (`resets` is the end of the block's period).
pub fn render_shown_json(s: &Shown, now: UnixMillis) -> String {
    let r = &s.record;
    let blocks: Vec<serde_json::Value> = s
        .blocks
        .iter()
        .filter(|b| b.is_current(now))
        .map(crate::blocks::block_json)
        .collect();
    serde_json::json!({
        "key_id": r.key_id,
        "customer": r.customer,
        "plan": r.plan,
        "status": status_at(r, now),
        "expires": r.expires_at.map(rfc3339),
        "blocks": blocks,
    })
    .to_string()
}

pub fn render_shown(s: &Shown, now: UnixMillis) -> String {
    let r = &s.record;
    let status = status_at(r, now);
    let mut out = format!(
        "key id:   {}\ncustomer: {}\nplan:     {}\nstatus:   {status}\nexpires:  {}\n",
        r.key_id,
        r.customer,
        r.plan,
        r.expires_at.map_or_else(|| "never".to_owned(), rfc3339)
    );
    let current: Vec<&Block> = s.blocks.iter().filter(|b| b.is_current(now)).collect();
    if current.is_empty() {
        out.push_str("blocks:   none\n");
    } else {
        out.push_str("blocks:\n");
        for b in current {
            out.push_str(&format!(
                "  {} {}: {} of {} used, resets {}\n",
                b.meter,
                b.period,
                b.used,
                b.limit,
                rfc3339(b.period.end())
            ));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tollgate_core::{MeterName, Plan, Window};
    use tollgate_tests::Harness;

    const NOW: UnixMillis = 1_795_266_307_000;

    pub(crate) async fn store_with_plan(label: &str) -> (Harness, KeysStore) {
        let h = Harness::new(label).await;
        let store = KeysStore::new(h.client(), h.tables.keys.clone());
        let plan: Plan = serde_json::from_str(
            r#"{"name":"pro","limits":[{"meter":"requests","window":"day","limit":100}]}"#,
        )
        .unwrap();
        store.put_plan(&plan).await.unwrap();
        (h, store)
    }

    #[test]
    fn customers_and_expiries_are_checked() {
        for ok in ["acme", "ACME-2", "a.b@c_d"] {
            check_customer(ok).unwrap();
        }
        for bad in ["", "has space", "a#b", "ü", &"x".repeat(129)] {
            assert!(check_customer(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_expiry("2026-11-21T13:05:07Z").unwrap(), NOW);
        assert_eq!(parse_expiry("2026-11-21T14:05:07+01:00").unwrap(), NOW);
        assert!(parse_expiry("tomorrow").is_err());
        assert!(parse_expiry("2026-11-21").is_err());
    }

    #[tokio::test]
    async fn creates_a_key_storing_only_its_digest() {
        let (h, store) = store_with_plan("clikeys").await;
        let c = create_key(&store, "acme", "pro", None, NOW, [5u8; 32])
            .await
            .unwrap();
        assert!(c.key.expose_secret().starts_with("tg_live_"));
        assert_eq!(c.record.key_id, c.key.key_id());
        let text = render_created(&c, false);
        assert!(text.contains(c.key.expose_secret()) && text.contains(&c.record.key_id));
        let json: serde_json::Value = serde_json::from_str(&render_created(&c, true)).unwrap();
        assert_eq!(json["secret"], c.key.expose_secret());
        assert_eq!(json["key_id"], c.record.key_id);
        // The authorizer's lookup finds it by digest.
        let (record, _) = store.lookup(Some(&c.key.digest()), &[]).await.unwrap();
        assert_eq!(record.unwrap(), c.record);
        // The secret is nowhere in the table.
        let scan = h
            .client()
            .scan()
            .table_name(&h.tables.keys)
            .send()
            .await
            .unwrap();
        let dump = format!("{:?}", scan.items());
        assert!(!dump.contains(&c.key.expose_secret()[8..]), "{dump}");
        assert!(dump.contains(&c.key.digest().0));
    }

    #[tokio::test]
    async fn refuses_unknown_plans_bad_customers_and_past_expiries() {
        let (_h, store) = store_with_plan("clikeysbad").await;
        let e = create_key(&store, "acme", "gold", None, NOW, [1u8; 32])
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("no plan \"gold\"; plans: pro"),
            "{e}"
        );
        let e = create_key(&store, "a#b", "pro", None, NOW, [1u8; 32])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("invalid customer"), "{e}");
        let e = create_key(&store, "acme", "pro", Some(NOW), NOW, [1u8; 32])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not in the future"), "{e}");
        assert!(list_keys(&store, "acme").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn lists_shows_and_revokes() {
        let (_h, store) = store_with_plan("clikeyslist").await;
        let a = create_key(&store, "acme", "pro", None, NOW, [1u8; 32])
            .await
            .unwrap();
        let b = create_key(
            &store,
            "acme",
            "pro",
            Some(NOW + 86_400_000),
            NOW,
            [2u8; 32],
        )
        .await
        .unwrap();
        create_key(&store, "other", "pro", None, NOW, [3u8; 32])
            .await
            .unwrap();
        let rows = list_keys(&store, "acme").await.unwrap();
        assert_eq!(rows.len(), 2);
        let table = render_list("acme", &rows);
        assert!(table.contains(&a.record.key_id) && table.contains(&b.record.key_id));
        assert!(!table.contains(&a.key.digest().0), "digests are not listed");
        assert!(render_list("nobody", &[]).contains("has no keys"));
        let listed: serde_json::Value = serde_json::from_str(&render_list_json(&rows)).unwrap();
        let ids: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["key_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [&rows[0].key_id, &rows[1].key_id]);
        assert_eq!(listed[0]["plan"], "pro");
        assert_eq!(listed[0]["status"], "active");
        assert!(!listed.to_string().contains(&a.key.digest().0));
        assert_eq!(render_list_json(&[]), "[]");

        let identity = Identity::key(&b.record.key_id).unwrap();
        let block = Block {
            meter: MeterName::requests(),
            period: Window::Day.period_of(NOW).unwrap(),
            limit: 100,
            used: 100,
        };
        store.put_block(&identity, &block).await.unwrap();
        let shown = show_key(&store, "acme", &b.record.key_id).await.unwrap();
        assert_eq!(shown.record, b.record);
        let text = render_shown(&shown, NOW);
        assert!(text.contains("status:   active"), "{text}");
        assert!(text.contains("expires:  2026-11-22T13:05:07Z"), "{text}");
        assert!(
            text.contains("requests day#2026-11-21: 100 of 100 used, resets 2026-11-22T00:00:00Z"),
            "{text}"
        );
        assert!(render_shown(&shown, NOW + 86_400_000).contains("status:   expired"));
        let json: serde_json::Value =
            serde_json::from_str(&render_shown_json(&shown, NOW)).unwrap();
        assert_eq!(json["key_id"], b.record.key_id.as_str());
        assert_eq!(json["customer"], "acme");
        assert_eq!(json["status"], "active");
        assert_eq!(json["expires"], "2026-11-22T13:05:07Z");
        assert_eq!(json["blocks"][0]["period"], "day#2026-11-21");
        assert_eq!(json["blocks"][0]["used"], 100);
        assert_eq!(json["blocks"][0]["resets"], "2026-11-22T00:00:00Z");
        let later: serde_json::Value =
            serde_json::from_str(&render_shown_json(&shown, NOW + 86_400_000)).unwrap();
        assert_eq!(later["status"], "expired");
        assert_eq!(later["blocks"], serde_json::json!([]));

        revoke_key(&store, "acme", &a.record.key_id).await.unwrap();
        let shown = show_key(&store, "acme", &a.record.key_id).await.unwrap();
        assert_eq!(shown.record.status, KeyStatus::Revoked);
        assert!(render_shown(&shown, NOW).contains("status:   revoked"));
        assert!(list_keys(&store, "acme")
            .await
            .unwrap()
            .iter()
            .any(|r| r.key_id == a.record.key_id && r.status == "revoked"));
        // Another customer's key cannot be revoked or shown through this one.
        let e = revoke_key(&store, "other", &a.record.key_id)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("has no key"), "{e}");
        assert!(show_key(&store, "other", &a.record.key_id).await.is_err());
    }
}
