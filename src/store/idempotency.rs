//! Idempotency keys, shared by every process on the store (zero-to-production's
//! `try_processing`, with a lease instead of a transaction held open across provider calls).
//!
//! The first request under a key takes it with one insert and runs; a process holds the key
//! by renewing a lease (`claimed_until_ms`) while the request runs, and then saves the answer.
//! What the gateway guarantees: a key's request runs **at most once**. A process that dies
//! mid-request leaves its row 'running' until the lease ends; it may have sent a provider
//! write by then, so running the request again could duplicate it. A later request under the
//! key therefore never runs it again: it takes the abandoned row (`Begun::Abandoned`) only to
//! save an answer that says the outcome is unknown.

use super::{changed, now_ms, Store, StoreError};
use sqlx::Row;
use std::time::Duration;

const RUNNING: &str = "running";
const DONE: &str = "done";

/// An answer as it was sent: status, `Content-Type`, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// A key held by this process: the one that may save its answer.
#[derive(Clone, Debug)]
pub struct Ticket {
    scope: String,
    key: String,
    holder: String,
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Begun {
    /// The key is new (or its row expired): run the request, then `save_response` (or
    /// `forget_processing` when it did not run).
    Run(Ticket),
    /// The same request already ran: answer with what it answered.
    Replay(StoredResponse),
    /// The same request is running (its holder's lease is live).
    InFlight,
    /// The key was used for another request.
    Reused,
    /// Its holder died mid-request (the lease ran out): the key is now held by the caller to
    /// save an answer saying the outcome is unknown. Never run the request.
    Abandoned(Ticket),
}

impl Store {
    /// Takes `key` in `scope` for a request whose hash is `request_hash`, or says why not.
    /// The key is remembered for `ttl`; `lease` is how long it is held without renewal.
    pub async fn try_processing(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
        ttl: Duration,
        lease: Duration,
    ) -> Result<Begun, StoreError> {
        let holder = fresh_holder();
        // A row vanishes between the insert and the read only when it expired and was
        // cleaned meanwhile; the next insert then takes it.
        for _ in 0..3 {
            let now = now_ms();
            let taken = sqlx::query(
                "INSERT INTO idempotency (scope, idempotency_key, request_hash, state, holder, \
                 claimed_until_ms, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (scope, idempotency_key) DO UPDATE SET \
                 request_hash = excluded.request_hash, state = excluded.state, \
                 holder = excluded.holder, claimed_until_ms = excluded.claimed_until_ms, \
                 response_status = NULL, response_type = NULL, response_body = NULL, \
                 created_ms = excluded.created_ms, expires_ms = excluded.expires_ms \
                 WHERE idempotency.expires_ms <= $7 \
                 AND (idempotency.state = $9 OR idempotency.claimed_until_ms <= $7)",
            )
            .bind(scope)
            .bind(key)
            .bind(request_hash)
            .bind(RUNNING)
            .bind(&holder)
            .bind(now + millis(lease))
            .bind(now)
            .bind(now + millis(ttl))
            .bind(DONE)
            .execute(self.pool())
            .await?;
            let ticket = Ticket {
                scope: scope.to_string(),
                key: key.to_string(),
                holder: holder.clone(),
            };
            if changed(&taken) {
                return Ok(Begun::Run(ticket));
            }
            let Some(row) = sqlx::query(
                "SELECT request_hash, state, holder, claimed_until_ms, response_status, \
                 response_type, response_body FROM idempotency \
                 WHERE scope = $1 AND idempotency_key = $2",
            )
            .bind(scope)
            .bind(key)
            .fetch_optional(self.pool())
            .await?
            else {
                continue;
            };
            if row.try_get::<String, _>("request_hash")? != request_hash {
                return Ok(Begun::Reused);
            }
            let state: String = row.try_get("state")?;
            if state == DONE {
                return Ok(Begun::Replay(StoredResponse {
                    status: row
                        .try_get::<Option<i64>, _>("response_status")?
                        .and_then(|s| u16::try_from(s).ok())
                        .unwrap_or(200),
                    content_type: row
                        .try_get::<Option<String>, _>("response_type")?
                        .unwrap_or_default(),
                    body: row
                        .try_get::<Option<String>, _>("response_body")?
                        .unwrap_or_default(),
                }));
            }
            if row.try_get::<i64, _>("claimed_until_ms")? > now {
                return Ok(Begun::InFlight);
            }
            let dead: String = row.try_get("holder")?;
            let taken = sqlx::query(
                "UPDATE idempotency SET holder = $1, claimed_until_ms = $2 \
                 WHERE scope = $3 AND idempotency_key = $4 AND state = $5 AND holder = $6 \
                 AND claimed_until_ms <= $7",
            )
            .bind(&holder)
            .bind(now + millis(lease))
            .bind(scope)
            .bind(key)
            .bind(RUNNING)
            .bind(&dead)
            .bind(now)
            .execute(self.pool())
            .await?;
            if changed(&taken) {
                return Ok(Begun::Abandoned(ticket));
            }
            // Another request took the abandoned row first: read what it left.
        }
        Err(StoreError::Query(sqlx::Error::Protocol(
            "an idempotency key kept changing while it was read".into(),
        )))
    }

    /// Extends the lease of a key still held by `ticket`. `false` when it is not held.
    pub async fn renew_processing(
        &self,
        ticket: &Ticket,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE idempotency SET claimed_until_ms = $1 \
             WHERE scope = $2 AND idempotency_key = $3 AND holder = $4 AND state = $5",
        )
        .bind(now_ms() + millis(lease))
        .bind(&ticket.scope)
        .bind(&ticket.key)
        .bind(&ticket.holder)
        .bind(RUNNING)
        .execute(self.pool())
        .await?;
        Ok(changed(&result))
    }

    /// Keeps `response` as the key's answer. `false` when the key is no longer held by
    /// `ticket` (its lease ran out and another request marked it abandoned).
    pub async fn save_response(
        &self,
        ticket: &Ticket,
        response: &StoredResponse,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE idempotency SET state = $1, response_status = $2, response_type = $3, \
             response_body = $4 \
             WHERE scope = $5 AND idempotency_key = $6 AND holder = $7 AND state = $8",
        )
        .bind(DONE)
        .bind(i64::from(response.status))
        .bind(&response.content_type)
        .bind(&response.body)
        .bind(&ticket.scope)
        .bind(&ticket.key)
        .bind(&ticket.holder)
        .bind(RUNNING)
        .execute(self.pool())
        .await?;
        Ok(changed(&result))
    }

    /// Gives the key up: the request was refused before it ran (parse, validation), so the
    /// same key may carry a corrected request.
    pub async fn forget_processing(&self, ticket: &Ticket) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency \
             WHERE scope = $1 AND idempotency_key = $2 AND holder = $3 AND state = $4",
        )
        .bind(&ticket.scope)
        .bind(&ticket.key)
        .bind(&ticket.holder)
        .bind(RUNNING)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes the keys past their expiry (not one still held). Returns how many.
    pub async fn delete_expired_keys(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let result = sqlx::query(
            "DELETE FROM idempotency WHERE expires_ms <= $1 \
             AND (state = $2 OR claimed_until_ms <= $1)",
        )
        .bind(now)
        .bind(DONE)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Names one attempt, so only it renews, saves or gives up its key.
fn fresh_holder() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap_or_default();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    const DAY: Duration = Duration::from_secs(86_400);
    const LEASE: Duration = Duration::from_secs(30);

    fn answer(body: &str) -> StoredResponse {
        StoredResponse {
            status: 200,
            content_type: "application/json".into(),
            body: body.into(),
        }
    }

    fn ticket(begun: Begun) -> Ticket {
        match begun {
            Begun::Run(ticket) | Begun::Abandoned(ticket) => ticket,
            other => panic!("expected to hold the key, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_key_runs_once_then_replays_and_refuses_another_request() {
        let (store, _dir) = testing::sqlite().await;
        let first = ticket(
            store
                .try_processing("s", "k", "h1", DAY, LEASE)
                .await
                .unwrap(),
        );
        assert!(matches!(
            store
                .try_processing("s", "k", "h1", DAY, LEASE)
                .await
                .unwrap(),
            Begun::InFlight
        ));
        assert!(matches!(
            store
                .try_processing("s", "k", "h2", DAY, LEASE)
                .await
                .unwrap(),
            Begun::Reused
        ));
        assert!(store.renew_processing(&first, LEASE).await.unwrap());
        assert!(store.save_response(&first, &answer("{}")).await.unwrap());
        match store
            .try_processing("s", "k", "h1", DAY, LEASE)
            .await
            .unwrap()
        {
            Begun::Replay(stored) => assert_eq!(stored, answer("{}")),
            other => panic!("{other:?}"),
        }
        // Another scope (caller) has its own keys.
        ticket(
            store
                .try_processing("t", "k", "h2", DAY, LEASE)
                .await
                .unwrap(),
        );
    }

    #[tokio::test]
    async fn a_request_that_did_not_run_gives_its_key_back() {
        let (store, _dir) = testing::sqlite().await;
        let first = ticket(
            store
                .try_processing("s", "k", "h1", DAY, LEASE)
                .await
                .unwrap(),
        );
        store.forget_processing(&first).await.unwrap();
        ticket(
            store
                .try_processing("s", "k", "h2", DAY, LEASE)
                .await
                .unwrap(),
        );
    }

    #[tokio::test]
    async fn a_holder_that_died_leaves_an_abandoned_key_that_is_never_run_again() {
        let (store, _dir) = testing::sqlite().await;
        let short = Duration::from_millis(30);
        let dead = ticket(
            store
                .try_processing("s", "k", "h", DAY, short)
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let next = match store
            .try_processing("s", "k", "h", DAY, LEASE)
            .await
            .unwrap()
        {
            Begun::Abandoned(ticket) => ticket,
            other => panic!("{other:?}"),
        };
        // The first holder wakes up: it can no longer save or renew.
        assert!(!store.renew_processing(&dead, LEASE).await.unwrap());
        assert!(store
            .save_response(&next, &answer("unknown"))
            .await
            .unwrap());
        assert!(!store.save_response(&dead, &answer("late")).await.unwrap());
        match store
            .try_processing("s", "k", "h", DAY, LEASE)
            .await
            .unwrap()
        {
            Begun::Replay(stored) => assert_eq!(stored.body, "unknown"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_expired_key_is_forgotten_and_cleaned() {
        let (store, _dir) = testing::sqlite().await;
        let ttl = Duration::from_millis(30);
        for key in ["old1", "old2"] {
            let done = ticket(
                store
                    .try_processing("s", key, "h1", ttl, LEASE)
                    .await
                    .unwrap(),
            );
            store.save_response(&done, &answer("{}")).await.unwrap();
        }
        // Expired but still running: held until its lease ends.
        ticket(
            store
                .try_processing("s", "running", "h", ttl, LEASE)
                .await
                .unwrap(),
        );
        ticket(
            store
                .try_processing("s", "fresh", "h", DAY, LEASE)
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Past its expiry a key is new again, for any request, cleaned or not.
        ticket(
            store
                .try_processing("s", "old1", "h2", DAY, LEASE)
                .await
                .unwrap(),
        );
        assert!(matches!(
            store
                .try_processing("s", "running", "h", DAY, LEASE)
                .await
                .unwrap(),
            Begun::InFlight
        ));
        assert_eq!(store.delete_expired_keys().await.unwrap(), 1, "old2 only");
        ticket(
            store
                .try_processing("s", "old2", "h2", DAY, LEASE)
                .await
                .unwrap(),
        );
        assert!(matches!(
            store
                .try_processing("s", "fresh", "h", DAY, LEASE)
                .await
                .unwrap(),
            Begun::InFlight
        ));
    }
}
