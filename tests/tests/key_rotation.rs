//! Key rotation with grace in the Keys table, against DynamoDB Local:
//! `KeysStore::roll_key` and `KeysStore::revoke_key` over every secret.
//!
//! Times come from the wall clock: DynamoDB Local's TTL sweeper deletes
//! items whose `ttl` has passed, so a test clock in the past would race it.

#![allow(clippy::unwrap_used)]

use tollgate_core::{decide, ApiKey, DenyReason, KeyRecord, KeyStatus, Lookup, Plan, UnixMillis};
use tollgate_store::{KeysStore, RollOutcome};
use tollgate_tests::Harness;

const HOUR: UnixMillis = 3_600_000;

fn wall_clock() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as UnixMillis
}

fn plan() -> Plan {
    serde_json::from_str(
        r#"{"name":"pro","limits":[{"meter":"requests","window":"day","limit":100}]}"#,
    )
    .unwrap()
}

async fn store_with_key(label: &str, now: UnixMillis) -> (Harness, KeysStore, ApiKey, KeyRecord) {
    let h = Harness::new(label).await;
    let store = KeysStore::new(h.client(), h.tables.keys.clone());
    store.put_plan(&plan()).await.unwrap();
    let key = ApiKey::generate([1u8; 32]);
    let record = KeyRecord {
        key_id: key.key_id(),
        customer: "acme".into(),
        plan: "pro".into(),
        status: KeyStatus::Active,
        expires_at: None,
        valid_until: None,
    };
    store.create_key(&key.digest(), &record, now).await.unwrap();
    (h, store, key, record)
}

async fn record_of(store: &KeysStore, key: &ApiKey) -> Option<KeyRecord> {
    store.lookup(Some(&key.digest()), &[]).await.unwrap().0
}

fn verdict(record: Option<KeyRecord>, now: UnixMillis) -> Result<String, DenyReason> {
    let p = plan();
    match decide(
        Lookup::Key {
            record,
            plan: Some(&p),
            blocks: &[],
        },
        now,
    ) {
        tollgate_core::Decision::Allow { subject, .. } => Ok(subject.identity.unwrap().to_string()),
        tollgate_core::Decision::Deny { reason, .. } => Err(reason),
    }
}

async fn dump(h: &Harness) -> Vec<String> {
    let scan = h
        .client()
        .scan()
        .table_name(&h.tables.keys)
        .send()
        .await
        .unwrap();
    let mut items: Vec<String> = scan
        .items()
        .iter()
        .map(|i| {
            let mut kv: Vec<String> = i.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            kv.sort();
            kv.join(",")
        })
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn the_old_secret_works_until_the_grace_ends_and_revoke_ends_both() {
    let now = wall_clock();
    let (_h, store, old, record) = store_with_key("roll", now).await;
    let new = ApiKey::generate([2u8; 32]);
    let grace_end = now + HOUR;
    let out = store
        .roll_key(&record.key_id, &new.digest(), grace_end, now)
        .await
        .unwrap();
    assert_eq!(
        out,
        RollOutcome::Rolled {
            record: record.clone(),
            replaced_until: grace_end,
            in_grace: 1,
        }
    );
    // Both secrets are the same key: id, customer, plan.
    let old_record = record_of(&store, &old).await.unwrap();
    assert_eq!(
        old_record,
        KeyRecord {
            valid_until: Some(grace_end),
            ..record.clone()
        }
    );
    let new_record = record_of(&store, &new).await.unwrap();
    assert_eq!(new_record, record);
    let identity = format!("key:{}", record.key_id);
    for r in [&old_record, &new_record] {
        assert_eq!(verdict(Some(r.clone()), now), Ok(identity.clone()));
        assert_eq!(
            verdict(Some(r.clone()), grace_end - 1),
            Ok(identity.clone())
        );
    }
    // At the grace end the old secret is refused, the new one is not.
    assert_eq!(
        verdict(Some(old_record), grace_end),
        Err(DenyReason::RolledKey)
    );
    assert_eq!(verdict(Some(new_record), grace_end), Ok(identity));
    // The customer's index names the new secret current, the old in grace.
    let secrets = store
        .key_secrets("acme", &record.key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secrets.current, new.digest());
    assert_eq!(secrets.graced.get(&old.digest().0), Some(&grace_end));
    // `keys show`'s view (the index's digest) is the new secret.
    assert_eq!(store.list_keys("acme").await.unwrap()[0].1, new.digest().0);

    // Revocation is immediate and ends both.
    assert!(store.revoke_key("acme", &record.key_id).await.unwrap());
    for k in [&old, &new] {
        let r = record_of(&store, k).await.unwrap();
        assert_eq!(r.status, KeyStatus::Revoked);
        assert_eq!(verdict(Some(r), now), Err(DenyReason::RevokedKey));
    }
}

#[tokio::test]
async fn rolling_a_missing_or_revoked_key_fails_and_changes_nothing() {
    let now = wall_clock();
    let (h, store, old, record) = store_with_key("rollbad", now).await;
    let new = ApiKey::generate([2u8; 32]);
    let before = dump(&h).await;
    assert_eq!(
        store
            .roll_key("k_0000000000000000", &new.digest(), now + HOUR, now)
            .await
            .unwrap(),
        RollOutcome::NoSuchKey
    );
    assert_eq!(dump(&h).await, before);
    assert!(store.revoke_key("acme", &record.key_id).await.unwrap());
    let revoked = dump(&h).await;
    assert_eq!(
        store
            .roll_key(&record.key_id, &new.digest(), now + HOUR, now)
            .await
            .unwrap(),
        RollOutcome::Revoked
    );
    assert_eq!(dump(&h).await, revoked);
    assert!(record_of(&store, &new).await.is_none());
    assert_eq!(
        record_of(&store, &old).await.unwrap().status,
        KeyStatus::Revoked
    );
    assert!(!store
        .revoke_key("acme", "k_0000000000000000")
        .await
        .unwrap());
}

#[tokio::test]
async fn repeated_rolls_keep_each_grace_and_revoke_finds_every_secret() {
    let now = wall_clock();
    let (h, store, first, record) = store_with_key("rollrepeat", now).await;
    let second = ApiKey::generate([2u8; 32]);
    let third = ApiKey::generate([3u8; 32]);
    store
        .roll_key(&record.key_id, &second.digest(), now + HOUR, now)
        .await
        .unwrap();
    // Rolling to a secret that exists (a retried roll with the same secret,
    // or a race lost) writes nothing.
    let before = dump(&h).await;
    assert_eq!(
        store
            .roll_key(&record.key_id, &second.digest(), now + 2 * HOUR, now)
            .await
            .unwrap(),
        RollOutcome::Conflict
    );
    assert_eq!(dump(&h).await, before);
    // A second roll: the first secret keeps its own grace end.
    let out = store
        .roll_key(&record.key_id, &third.digest(), now + 2 * HOUR, now + 1)
        .await
        .unwrap();
    assert!(
        matches!(out, RollOutcome::Rolled { in_grace: 2, .. }),
        "{out:?}"
    );
    let at = |r: Option<KeyRecord>, t| verdict(r, t).is_ok();
    let (r1, r2, r3) = (
        record_of(&store, &first).await,
        record_of(&store, &second).await,
        record_of(&store, &third).await,
    );
    assert_eq!(r1.as_ref().unwrap().valid_until, Some(now + HOUR));
    assert_eq!(r2.as_ref().unwrap().valid_until, Some(now + 2 * HOUR));
    assert_eq!(r3.as_ref().unwrap().valid_until, None);
    assert!(at(r1.clone(), now + HOUR - 1) && !at(r1, now + HOUR));
    assert!(at(r2.clone(), now + HOUR) && !at(r2, now + 2 * HOUR));
    assert!(at(r3, now + 100 * HOUR));
    for r in [&first, &second, &third] {
        assert_eq!(record_of(&store, r).await.unwrap().key_id, record.key_id);
    }
    // A secret in grace whose item the TTL clean-up already deleted comes
    // back whole and revoked, never half-written.
    h.client()
        .delete_item()
        .table_name(&h.tables.keys)
        .key(
            "pk",
            tollgate_store::attr::s(tollgate_store::keys::key_pk(&first.digest())),
        )
        .key("sk", tollgate_store::attr::s("apikey"))
        .send()
        .await
        .unwrap();
    assert!(store.revoke_key("acme", &record.key_id).await.unwrap());
    for k in [&first, &second, &third] {
        let r = record_of(&store, k).await.unwrap();
        assert_eq!(r.status, KeyStatus::Revoked, "{r:?}");
        assert_eq!(r.key_id, record.key_id);
    }
}

#[tokio::test]
async fn a_roll_without_grace_ends_the_old_secret_at_once() {
    let now = wall_clock();
    let (_h, store, old, record) = store_with_key("rollnow", now).await;
    let new = ApiKey::generate([2u8; 32]);
    let out = store
        .roll_key(&record.key_id, &new.digest(), now, now)
        .await
        .unwrap();
    assert!(
        matches!(out, RollOutcome::Rolled { in_grace: 0, .. }),
        "{out:?}"
    );
    assert_eq!(
        verdict(record_of(&store, &old).await, now),
        Err(DenyReason::RolledKey)
    );
    assert!(verdict(record_of(&store, &new).await, now).is_ok());
    // Only the current secret is listed; revoke still ends it.
    assert!(store
        .key_secrets("acme", &record.key_id)
        .await
        .unwrap()
        .unwrap()
        .graced
        .is_empty());
    assert!(store.revoke_key("acme", &record.key_id).await.unwrap());
    assert_eq!(
        verdict(record_of(&store, &new).await, now),
        Err(DenyReason::RevokedKey)
    );
}
