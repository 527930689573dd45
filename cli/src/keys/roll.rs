//! `tollgate keys roll <key-id> --grace 24h`: a new secret for an existing
//! key. The secret it replaces keeps working until the grace ends; both
//! count to the same key id, customer, plan and limits. Rolling again ends
//! no earlier grace (see `tollgate_core::rotation`); `keys revoke` ends
//! every secret of the key at once.

use anyhow::{bail, Context, Result};
use tollgate_core::rotation::{grace_end, parse_grace};
use tollgate_core::{ApiKey, KeyRecord, UnixMillis};
use tollgate_store::{KeysStore, RollOutcome};

/// A key just rolled: the only time its new secret exists outside the client.
#[derive(Debug)]
pub struct Rolled {
    pub key: ApiKey,
    pub record: KeyRecord,
    /// When the replaced secret stops working.
    pub replaced_until: UnixMillis,
}

/// Rolls key `key_id` to a new secret made from `secret` (32 random
/// bytes), the replaced secret working for `grace` (text such as `24h`,
/// at most 30 days). Stores only the new secret's digest.
pub async fn roll_key(
    store: &KeysStore,
    key_id: &str,
    grace: &str,
    now: UnixMillis,
    secret: [u8; tollgate_core::apikey::SECRET_BYTES],
) -> Result<Rolled> {
    let grace = parse_grace(grace)?;
    tollgate_core::Identity::key(key_id).with_context(|| format!("invalid key id {key_id:?}"))?;
    let key = ApiKey::generate(secret);
    let until = grace_end(now, grace);
    match store
        .roll_key(key_id, &key.digest(), until, now)
        .await
        .context("rolling the key")?
    {
        RollOutcome::Rolled {
            record,
            replaced_until,
            ..
        } => Ok(Rolled {
            key,
            record,
            replaced_until,
        }),
        RollOutcome::NoSuchKey => bail!("there is no key {key_id}"),
        RollOutcome::Revoked => bail!("key {key_id} is revoked: it cannot be rolled"),
        RollOutcome::Expired => bail!("key {key_id} has expired: create a new key instead"),
        RollOutcome::Conflict => {
            bail!("key {key_id} changed while being rolled (another roll or a revocation); nothing was written, run it again")
        }
    }
}

/// What `keys roll` prints: the key id, until when the old secret works
/// and, once, the new secret.
pub fn render_rolled(r: &Rolled, json: bool) -> String {
    if json {
        return serde_json::json!({
            "key_id": r.record.key_id,
            "secret": r.key.expose_secret(),
            "customer": r.record.customer,
            "plan": r.record.plan,
            "old_secret_valid_until": super::rfc3339(r.replaced_until),
        })
        .to_string();
    }
    format!(
        "key id:   {}\ncustomer: {}\nplan:     {}\nold secret works until: {}\nsecret:   {}\n\nThe new secret is shown only now: tollgate stores only its SHA-256 digest.",
        r.record.key_id,
        r.record.customer,
        r.record.plan,
        super::rfc3339(r.replaced_until),
        r.key.expose_secret()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::keys::tests::store_with_plan;
    use crate::keys::{create_key, revoke_key, show_key};
    use tollgate_core::KeyStatus;

    fn wall_clock() -> UnixMillis {
        chrono::Utc::now().timestamp_millis()
    }

    #[tokio::test]
    async fn rolls_prints_the_new_secret_once_and_checks_its_input() {
        // Times from the wall clock: DynamoDB Local's TTL sweeper is live.
        let now = wall_clock();
        let (h, store) = store_with_plan("clikeysroll").await;
        let c = create_key(&store, "acme", "pro", None, now, [1u8; 32])
            .await
            .unwrap();
        let id = &c.record.key_id;
        for (bad, why) in [
            ("24", "such as 30m, 24h or 7d"),
            ("1w", "such as 30m, 24h or 7d"),
            ("31d", "at most 30d"),
        ] {
            let e = roll_key(&store, id, bad, now, [2u8; 32]).await.unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        let e = roll_key(&store, "k_0000000000000000", "1h", now, [2u8; 32])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("there is no key"), "{e}");

        let r = roll_key(&store, id, "24h", now, [2u8; 32]).await.unwrap();
        assert_eq!(&r.record.key_id, id);
        assert_eq!(r.replaced_until, now + 86_400_000);
        let text = render_rolled(&r, false);
        assert!(text.contains(r.key.expose_secret()) && text.contains(id));
        assert!(text.contains("old secret works until"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&render_rolled(&r, true)).unwrap();
        assert_eq!(json["secret"], r.key.expose_secret());
        assert_eq!(&json["key_id"], id.as_str());
        // Neither secret is in the table; both digests are.
        let scan = h
            .client()
            .scan()
            .table_name(&h.tables.keys)
            .send()
            .await
            .unwrap();
        let dump = format!("{:?}", scan.items());
        for k in [&c.key, &r.key] {
            assert!(!dump.contains(&k.expose_secret()[8..]));
            assert!(dump.contains(&k.digest().0));
        }
        // `keys show` shows the key, now under its new secret.
        assert_eq!(show_key(&store, "acme", id).await.unwrap().record, c.record);
        // Revoked: both secrets end, and it cannot be rolled again.
        revoke_key(&store, "acme", id).await.unwrap();
        for k in [&c.key, &r.key] {
            let (record, _) = store.lookup(Some(&k.digest()), &[]).await.unwrap();
            assert_eq!(record.unwrap().status, KeyStatus::Revoked);
        }
        let e = roll_key(&store, id, "1h", now, [3u8; 32])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("is revoked"), "{e}");
    }
}
