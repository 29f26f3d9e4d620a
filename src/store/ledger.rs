//! The ledger of records the gateway wrote at a provider it cannot read back (Mainbrainer):
//! per record, its state as the gateway's writes left it, and every write's body and answer.
//! What a record's state is after a write is the provider's business (its adapter passes a
//! `merge`); here it is kept, in one transaction per write, the same on SQLite and PostgreSQL.

use super::{now_ms, Store, StoreError};
use crate::contact::ProviderId;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

/// One record the gateway wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerRecord {
    pub native_id: String,
    /// The provider's record as the gateway's writes left it.
    pub record: Value,
    /// The gateway's first write to it.
    pub created_ms: i64,
    /// Its last.
    pub updated_ms: i64,
    /// When the gateway learned the record is gone; `None` while it is not.
    pub deleted_ms: Option<i64>,
}

/// One write, as the ledger keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerWrite {
    /// `create`, `update`, `upsert`, `do_not_contact`…
    pub operation: String,
    /// The body sent.
    pub sent: Value,
    /// The provider's answer.
    pub answered: Value,
    pub at_ms: i64,
}

const RECORD_COLUMNS: &str = "native_id, record, created_ms, updated_ms, deleted_ms";

fn record(row: &AnyRow) -> Result<LedgerRecord, sqlx::Error> {
    let text: String = row.try_get("record")?;
    Ok(LedgerRecord {
        native_id: row.try_get("native_id")?,
        record: serde_json::from_str(&text).unwrap_or(Value::Null),
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        deleted_ms: row.try_get("deleted_ms")?,
    })
}

impl Store {
    /// Records `write` to `native_id` of `provider`: `merge` makes the record's new state from
    /// the one held (`None` before the first write, or after the gateway learned it was gone)
    /// and the write is kept beside it, in one transaction. Writes to one record take turns,
    /// from any process: each bumps the record's write count before reading it.
    pub async fn ledger_write(
        &self,
        provider: ProviderId,
        native_id: &str,
        write: &LedgerWrite,
        merge: impl FnOnce(Option<&Value>) -> Value,
    ) -> Result<LedgerRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        // A write first: it takes SQLite's write lock and PostgreSQL's row lock until commit.
        sqlx::query(
            "INSERT INTO ledger_records (provider, native_id, record, created_ms, updated_ms, writes) \
             VALUES ($1, $2, 'null', $3, $3, 1) \
             ON CONFLICT (provider, native_id) DO UPDATE SET writes = ledger_records.writes + 1",
        )
        .bind(provider.as_str())
        .bind(native_id)
        .bind(write.at_ms)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS}, writes FROM ledger_records WHERE provider = $1 AND native_id = $2"
        ))
        .bind(provider.as_str())
        .bind(native_id)
        .fetch_one(&mut *tx)
        .await?;
        let held = record(&row)?;
        let seq: i64 = row.try_get("writes")?;
        let previous = Some(&held.record).filter(|r| !r.is_null() && held.deleted_ms.is_none());
        let merged = merge(previous);
        sqlx::query(
            "UPDATE ledger_records SET record = $1, updated_ms = $2, deleted_ms = NULL \
             WHERE provider = $3 AND native_id = $4",
        )
        .bind(merged.to_string())
        .bind(write.at_ms)
        .bind(provider.as_str())
        .bind(native_id)
        .execute(&mut *tx)
        .await?;
        insert_write(&mut tx, provider, native_id, seq, write).await?;
        tx.commit().await?;
        Ok(LedgerRecord {
            record: merged,
            updated_ms: write.at_ms,
            deleted_ms: None,
            ..held
        })
    }

    /// Marks `native_id` gone (the gateway learned so from `write`'s answer), keeping its last
    /// state and the write. `false` when the ledger does not hold it: nothing is recorded.
    pub async fn ledger_tombstone(
        &self,
        provider: ProviderId,
        native_id: &str,
        write: &LedgerWrite,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(
            "UPDATE ledger_records SET writes = writes + 1, deleted_ms = $1 \
             WHERE provider = $2 AND native_id = $3 AND deleted_ms IS NULL RETURNING writes",
        )
        .bind(write.at_ms)
        .bind(provider.as_str())
        .bind(native_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let seq: i64 = row.try_get("writes")?;
        insert_write(&mut tx, provider, native_id, seq, write).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The record `native_id`, tombstoned or not; `None` when the gateway never wrote it.
    pub async fn ledger_record(
        &self,
        provider: ProviderId,
        native_id: &str,
    ) -> Result<Option<LedgerRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM ledger_records \
             WHERE provider = $1 AND native_id = $2"
        ))
        .bind(provider.as_str())
        .bind(native_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(record).transpose()?)
    }

    /// Records `offset .. offset + limit` of the provider's live records, in the order they
    /// were first written (a record written later goes after every earlier one).
    pub async fn ledger_records(
        &self,
        provider: ProviderId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<LedgerRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM ledger_records \
             WHERE provider = $1 AND deleted_ms IS NULL \
             ORDER BY created_ms, native_id LIMIT $2 OFFSET $3"
        ))
        .bind(provider.as_str())
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }

    /// How many live records the ledger holds for `provider`.
    pub async fn ledger_count(&self, provider: ProviderId) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM ledger_records \
             WHERE provider = $1 AND deleted_ms IS NULL",
        )
        .bind(provider.as_str())
        .fetch_one(self.pool())
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n.max(0) as u64)
    }

    /// Every write to `native_id`, oldest first.
    pub async fn ledger_writes(
        &self,
        provider: ProviderId,
        native_id: &str,
    ) -> Result<Vec<LedgerWrite>, StoreError> {
        let rows = sqlx::query(
            "SELECT operation, sent, answered, at_ms FROM ledger_writes \
             WHERE provider = $1 AND native_id = $2 ORDER BY seq",
        )
        .bind(provider.as_str())
        .bind(native_id)
        .fetch_all(self.pool())
        .await?;
        let json = |row: &AnyRow, column| -> Result<Value, sqlx::Error> {
            let text: String = row.try_get(column)?;
            Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        };
        rows.iter()
            .map(|row| {
                Ok(LedgerWrite {
                    operation: row.try_get("operation")?,
                    sent: json(row, "sent")?,
                    answered: json(row, "answered")?,
                    at_ms: row.try_get("at_ms")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

async fn insert_write(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    provider: ProviderId,
    native_id: &str,
    seq: i64,
    write: &LedgerWrite,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ledger_writes (provider, native_id, seq, operation, sent, answered, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(provider.as_str())
    .bind(native_id)
    .bind(seq)
    .bind(&write.operation)
    .bind(write.sent.to_string())
    .bind(write.answered.to_string())
    .bind(write.at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl LedgerWrite {
    /// A write made now.
    pub fn now(operation: &str, sent: Value, answered: Value) -> Self {
        LedgerWrite {
            operation: operation.to_string(),
            sent,
            answered,
            at_ms: now_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;
    use serde_json::json;

    const P: ProviderId = ProviderId::Mainbrainer;

    fn write(operation: &str, n: i64) -> LedgerWrite {
        LedgerWrite::now(operation, json!({ "n": n }), json!({ "status": "Success" }))
    }

    /// `merge` for the tests: the previous record's `n`s, plus this one.
    fn append(n: i64) -> impl FnOnce(Option<&Value>) -> Value {
        move |previous| {
            let mut ns = previous
                .and_then(|p| p["ns"].as_array().cloned())
                .unwrap_or_default();
            ns.push(json!(n));
            json!({ "ns": ns })
        }
    }

    #[tokio::test]
    async fn writes_merge_onto_the_record_and_are_kept_with_their_answers() {
        let (store, _dir) = testing::sqlite().await;
        assert_eq!(store.ledger_record(P, "7").await.unwrap(), None);
        let first = store
            .ledger_write(P, "7", &write("create", 1), append(1))
            .await
            .unwrap();
        let second = store
            .ledger_write(P, "7", &write("update", 2), append(2))
            .await
            .unwrap();
        assert_eq!(second.record, json!({ "ns": [1, 2] }));
        assert_eq!(second.created_ms, first.created_ms);
        assert_eq!(store.ledger_record(P, "7").await.unwrap(), Some(second));
        let writes = store.ledger_writes(P, "7").await.unwrap();
        let operations: Vec<&str> = writes.iter().map(|w| w.operation.as_str()).collect();
        assert_eq!(operations, ["create", "update"]);
        assert_eq!(writes[1].sent, json!({ "n": 2 }));
        assert_eq!(writes[1].answered, json!({ "status": "Success" }));
        // Another provider's record of the same id is another record.
        assert_eq!(
            store
                .ledger_record(ProviderId::Consuelo, "7")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn concurrent_writes_to_one_record_all_land() {
        let (store, _dir) = testing::sqlite().await;
        let writes = (0..8).map(|n| {
            let store = store.clone();
            async move {
                store
                    .ledger_write(P, "9", &write("update", n), append(n))
                    .await
                    .unwrap()
            }
        });
        futures::future::join_all(writes).await;
        let held = store.ledger_record(P, "9").await.unwrap().unwrap();
        let mut ns: Vec<i64> = held.record["ns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_i64().unwrap())
            .collect();
        ns.sort();
        assert_eq!(ns, (0..8).collect::<Vec<_>>(), "no write lost");
        assert_eq!(store.ledger_writes(P, "9").await.unwrap().len(), 8);
    }

    #[tokio::test]
    async fn listings_go_in_first_write_order_without_tombstones() {
        let (store, _dir) = testing::sqlite().await;
        for id in ["30", "10", "20"] {
            store
                .ledger_write(P, id, &write("create", 0), append(0))
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        // A later write to the first keeps its place.
        store
            .ledger_write(P, "30", &write("update", 1), append(1))
            .await
            .unwrap();
        let ids = |records: Vec<LedgerRecord>| -> Vec<String> {
            records.into_iter().map(|r| r.native_id).collect()
        };
        assert_eq!(
            ids(store.ledger_records(P, 0, 10).await.unwrap()),
            ["30", "10", "20"]
        );
        assert_eq!(ids(store.ledger_records(P, 1, 1).await.unwrap()), ["10"]);
        assert_eq!(store.ledger_count(P).await.unwrap(), 3);

        assert!(store
            .ledger_tombstone(P, "10", &write("update", 2))
            .await
            .unwrap());
        assert!(
            !store
                .ledger_tombstone(P, "10", &write("update", 3))
                .await
                .unwrap(),
            "already gone"
        );
        assert!(!store
            .ledger_tombstone(P, "99", &write("update", 3))
            .await
            .unwrap());
        assert_eq!(
            ids(store.ledger_records(P, 0, 10).await.unwrap()),
            ["30", "20"]
        );
        assert_eq!(store.ledger_count(P).await.unwrap(), 2);
        let gone = store.ledger_record(P, "10").await.unwrap().unwrap();
        assert!(gone.deleted_ms.is_some());
        assert_eq!(gone.record, json!({ "ns": [0] }), "its last state is kept");
        assert_eq!(store.ledger_writes(P, "10").await.unwrap().len(), 2);

        // Written again: a fresh record in its old place.
        let back = store
            .ledger_write(P, "10", &write("create", 4), append(4))
            .await
            .unwrap();
        assert_eq!(back.record, json!({ "ns": [4] }));
        assert_eq!(back.deleted_ms, None);
        assert_eq!(
            ids(store.ledger_records(P, 0, 10).await.unwrap()),
            ["30", "10", "20"]
        );
    }
}
