//! Change events in the store, shared by every process on it: the events each replica tails
//! (numbered in commit order, see 0005_changes.sql), the pollers' snapshots, and the webhook
//! delivery queue (a lease per row, as the do-not-contact outbox).

use super::{changed, now_ms, Backend, Store, StoreError};
use crate::contact::ProviderId;
use sqlx::Row;
use std::collections::HashMap;
use std::time::Duration;

/// A poller snapshot row to keep in step with a change: the record's new hash, or `None`
/// when the record is gone.
#[derive(Clone, Debug)]
pub struct SnapshotUpkeep {
    pub provider: ProviderId,
    pub native_id: String,
    pub hash: Option<String>,
}

/// A webhook delivery to enqueue with a change.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub url: String,
    /// The change's kind (`CREATED`…), for the delivery's headers.
    pub kind: String,
    pub body: String,
}

/// An event as another replica reads it.
#[derive(Clone, Debug)]
pub struct StoredChange {
    pub seq: i64,
    /// The process that published it.
    pub origin: String,
    /// The change, JSON.
    pub body: String,
}

/// A due delivery a worker now holds.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub url: String,
    pub kind: String,
    pub body: String,
    /// Attempts made so far.
    pub attempts: i64,
}

/// What a delivery attempt came to.
#[derive(Clone, Debug)]
pub struct DeliveryOutcome {
    /// The endpoint answered 2xx.
    pub delivered: bool,
    /// The endpoint's status, when it answered.
    pub status: Option<u16>,
    /// Why it failed, in words.
    pub error: Option<String>,
    /// When to try again (not delivered only).
    pub next_attempt_ms: i64,
}

/// Rows of a baseline written per statement (3 values each, well under every bind limit).
const SNAPSHOT_CHUNK: usize = 300;

fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap_or_default();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Records a change: the next event number, the event, its webhook deliveries and its
    /// snapshot upkeep, in one transaction. Returns the event's number.
    pub async fn record_change(
        &self,
        origin: &str,
        body: &str,
        at_ms: i64,
        deliveries: &[NewDelivery],
        snapshot: Option<&SnapshotUpkeep>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Holding the counter's row until commit: events become visible in number order.
        let seq: i64 = sqlx::query(
            "UPDATE change_counter SET seq = seq + 1 WHERE name = 'events' RETURNING seq",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("seq")?;
        sqlx::query("INSERT INTO change_events (seq, origin, body, at_ms) VALUES ($1, $2, $3, $4)")
            .bind(seq)
            .bind(origin)
            .bind(body)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
        let now = now_ms();
        for delivery in deliveries {
            sqlx::query(
                "INSERT INTO webhook_deliveries \
                 (id, url, kind, body, status, attempts, next_attempt_ms, created_ms) \
                 VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
            )
            .bind(new_id())
            .bind(&delivery.url)
            .bind(&delivery.kind)
            .bind(&delivery.body)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(upkeep) = snapshot {
            match &upkeep.hash {
                Some(hash) => {
                    sqlx::query(
                        "INSERT INTO poll_snapshots (provider, native_id, hash) VALUES ($1, $2, $3) \
                         ON CONFLICT (provider, native_id) DO UPDATE SET hash = excluded.hash",
                    )
                    .bind(upkeep.provider.as_str())
                    .bind(&upkeep.native_id)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query(
                        "DELETE FROM poll_snapshots WHERE provider = $1 AND native_id = $2",
                    )
                    .bind(upkeep.provider.as_str())
                    .bind(&upkeep.native_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(seq)
    }

    /// The number of the last event recorded (0: none yet).
    pub async fn last_change_seq(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT seq FROM change_counter WHERE name = 'events'")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("seq")?)
    }

    /// Events numbered after `seq`, oldest first, at most `limit`.
    pub async fn changes_after(
        &self,
        seq: i64,
        limit: i64,
    ) -> Result<Vec<StoredChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, origin, body FROM change_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredChange {
                    seq: row.try_get("seq")?,
                    origin: row.try_get("origin")?,
                    body: row.try_get("body")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Forgets events recorded before `at_ms` (replicas tail within seconds).
    pub async fn delete_changes_before(&self, at_ms: i64) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM change_events WHERE at_ms < $1")
            .bind(at_ms)
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected())
    }

    /// When `provider`'s baseline was recorded, if it was.
    pub async fn poll_baseline(&self, provider: ProviderId) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT baseline_ms FROM poll_state WHERE provider = $1")
            .bind(provider.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("baseline_ms")).transpose()?)
    }

    /// `provider`'s snapshot: native id → hash.
    pub async fn poll_snapshot(
        &self,
        provider: ProviderId,
    ) -> Result<HashMap<String, String>, StoreError> {
        let rows = sqlx::query("SELECT native_id, hash FROM poll_snapshots WHERE provider = $1")
            .bind(provider.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("native_id")?, row.try_get("hash")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Replaces `provider`'s snapshot with `rows` (id, hash) and marks the baseline recorded.
    pub async fn record_poll_baseline(
        &self,
        provider: ProviderId,
        rows: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM poll_snapshots WHERE provider = $1")
            .bind(provider.as_str())
            .execute(&mut *tx)
            .await?;
        for chunk in rows.chunks(SNAPSHOT_CHUNK) {
            let values = (0..chunk.len())
                .map(|i| format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO poll_snapshots (provider, native_id, hash) VALUES {values} \
                 ON CONFLICT (provider, native_id) DO UPDATE SET hash = excluded.hash"
            );
            let mut query = sqlx::query(&sql).bind(provider.as_str());
            for (id, hash) in chunk {
                query = query.bind(id).bind(hash);
            }
            query.execute(&mut *tx).await?;
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO poll_state (provider, baseline_ms, polled_ms) VALUES ($1, $2, $2) \
             ON CONFLICT (provider) DO UPDATE SET baseline_ms = excluded.baseline_ms, \
             polled_ms = excluded.polled_ms",
        )
        .bind(provider.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Notes that `provider` was polled now.
    pub async fn record_poll(&self, provider: ProviderId) -> Result<(), StoreError> {
        sqlx::query("UPDATE poll_state SET polled_ms = $1 WHERE provider = $2")
            .bind(now_ms())
            .bind(provider.as_str())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Takes the due delivery to `url` that has waited longest, for `holder` until `lease`
    /// from now.
    pub async fn claim_due_delivery(
        &self,
        url: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<Delivery>, StoreError> {
        let now = now_ms();
        // PostgreSQL: a row another worker's statement is claiming is skipped, not waited for.
        let skip_locked = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "UPDATE webhook_deliveries SET claimed_by = $1, claimed_until = $2 \
             WHERE status = 'pending' AND (claimed_until IS NULL OR claimed_until < $4) \
             AND id = (SELECT d.id FROM webhook_deliveries d \
                 WHERE d.url = $3 AND d.status = 'pending' AND d.next_attempt_ms <= $4 \
                 AND (d.claimed_until IS NULL OR d.claimed_until < $4) \
                 ORDER BY d.next_attempt_ms, d.created_ms LIMIT 1{skip_locked}) \
             RETURNING id, url, kind, body, attempts"
        ))
        .bind(holder)
        .bind(now + lease.as_millis() as i64)
        .bind(url)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Delivery {
            id: row.try_get("id")?,
            url: row.try_get("url")?,
            kind: row.try_get("kind")?,
            body: row.try_get("body")?,
            attempts: row.try_get("attempts")?,
        }))
    }

    /// Records what an attempt came to, if `holder` still holds the delivery; `true` when
    /// recorded. The lease is given back either way.
    pub async fn finish_delivery(
        &self,
        id: &str,
        holder: &str,
        outcome: &DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let result = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
             next_attempt_ms = $2, last_status = $3, last_error = $4, delivered_ms = $5, \
             claimed_by = NULL, claimed_until = NULL \
             WHERE id = $6 AND claimed_by = $7",
        )
        .bind(if outcome.delivered {
            "delivered"
        } else {
            "pending"
        })
        .bind(outcome.next_attempt_ms)
        .bind(outcome.status.map(i64::from))
        .bind(outcome.error.as_deref())
        .bind(outcome.delivered.then_some(now))
        .bind(id)
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(changed(&result))
    }

    /// Gives a held delivery back, due at once (a worker stopping mid-attempt).
    pub async fn release_delivery(&self, id: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL \
             WHERE id = $1 AND claimed_by = $2",
        )
        .bind(id)
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets deliveries made before `at_ms`.
    pub async fn delete_delivered_before(&self, at_ms: i64) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status = 'delivered' AND delivered_ms < $1",
        )
        .bind(at_ms)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// Deliveries not made yet, per url.
    pub async fn pending_deliveries(&self) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT url, COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending' GROUP BY url",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("url")?, row.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[tokio::test]
    async fn events_are_numbered_in_order_and_read_after_a_number() {
        let (store, _dir) = testing::sqlite().await;
        assert_eq!(store.last_change_seq().await.unwrap(), 0);
        for n in 1..=3 {
            let seq = store
                .record_change("p1", &format!("{{\"n\":{n}}}"), now_ms(), &[], None)
                .await
                .unwrap();
            assert_eq!(seq, n);
        }
        assert_eq!(store.last_change_seq().await.unwrap(), 3);
        let after = store.changes_after(1, 10).await.unwrap();
        assert_eq!(after.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(after[0].origin, "p1");
        assert_eq!(store.delete_changes_before(now_ms() + 1).await.unwrap(), 3);
        let seq = store
            .record_change("p1", "{}", now_ms(), &[], None)
            .await
            .unwrap();
        assert_eq!(
            seq, 4,
            "numbers keep growing after old events are forgotten"
        );
    }

    #[tokio::test]
    async fn snapshots_follow_changes_and_baselines_replace_them() {
        let (store, _dir) = testing::sqlite().await;
        let p = ProviderId::Consuelo;
        assert_eq!(store.poll_baseline(p).await.unwrap(), None);
        let rows: Vec<(String, String)> = (0..700)
            .map(|i| (format!("c{i}"), format!("h{i}")))
            .collect();
        store.record_poll_baseline(p, &rows).await.unwrap();
        assert!(store.poll_baseline(p).await.unwrap().is_some());
        assert_eq!(store.poll_snapshot(p).await.unwrap().len(), 700);
        let upkeep = |id: &str, hash: Option<&str>| SnapshotUpkeep {
            provider: p,
            native_id: id.into(),
            hash: hash.map(Into::into),
        };
        store
            .record_change("p", "{}", now_ms(), &[], Some(&upkeep("c1", Some("new"))))
            .await
            .unwrap();
        store
            .record_change("p", "{}", now_ms(), &[], Some(&upkeep("c2", None)))
            .await
            .unwrap();
        let snapshot = store.poll_snapshot(p).await.unwrap();
        assert_eq!(snapshot["c1"], "new");
        assert!(!snapshot.contains_key("c2"));
        store
            .record_poll_baseline(p, &[("x".into(), "y".into())])
            .await
            .unwrap();
        assert_eq!(store.poll_snapshot(p).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_delivery_has_one_holder_and_is_retried_until_delivered() {
        let (store, _dir) = testing::sqlite().await;
        let url = "http://127.0.0.1:9/hook";
        let delivery = NewDelivery {
            url: url.into(),
            kind: "CREATED".into(),
            body: "{}".into(),
        };
        store
            .record_change("p", "{}", now_ms(), &[delivery], None)
            .await
            .unwrap();
        let long = Duration::from_secs(30);
        let held = store
            .claim_due_delivery(url, "w1", long)
            .await
            .unwrap()
            .expect("due");
        assert_eq!(held.attempts, 0);
        assert!(store
            .claim_due_delivery(url, "w2", long)
            .await
            .unwrap()
            .is_none());
        let failed = DeliveryOutcome {
            delivered: false,
            status: Some(500),
            error: Some("HTTP 500".into()),
            next_attempt_ms: now_ms() + 60_000,
        };
        assert!(store
            .finish_delivery(&held.id, "w1", &failed)
            .await
            .unwrap());
        assert!(
            store
                .claim_due_delivery(url, "w2", long)
                .await
                .unwrap()
                .is_none(),
            "not due yet"
        );
        let due_now = DeliveryOutcome {
            next_attempt_ms: now_ms(),
            ..failed
        };
        // Only a holder records an outcome.
        assert!(!store
            .finish_delivery(&held.id, "w1", &due_now)
            .await
            .unwrap());
        assert_eq!(store.pending_deliveries().await.unwrap()[url], 1);
    }
}
