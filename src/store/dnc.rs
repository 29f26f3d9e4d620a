//! The do-not-contact registry and its outbox, shared by every process on the store.
//!
//! An entry is written before any provider is called; each (entry, provider) has one outbox
//! row saying where the propagation stands. A row is sent only by the holder of its lease
//! (`claimed_by` until `claimed_until`): the request that made it (claimed as it is inserted),
//! or later an outbox worker that claims it once it is due and unleased. Every claim re-checks
//! the lease in the `UPDATE`'s own `WHERE`, so two workers never both hold a row; PostgreSQL
//! also skips rows another worker is claiming (`FOR UPDATE SKIP LOCKED`). A process that dies
//! holding a row releases it when its lease runs out.

use super::{changed, now_ms, Backend, Store, StoreError};
use crate::contact::ProviderId;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Where one provider's propagation of an entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationStatus {
    /// Not applied yet: sent again when due.
    Pending,
    Applied,
    /// Refused for good (a 4xx); sent again only when the entry is added again.
    Failed,
    /// The provider has no mechanism for it; nothing was sent.
    Unsupported,
}

impl PropagationStatus {
    fn as_str(self) -> &'static str {
        match self {
            PropagationStatus::Pending => "pending",
            PropagationStatus::Applied => "applied",
            PropagationStatus::Failed => "failed",
            PropagationStatus::Unsupported => "unsupported",
        }
    }

    fn parse(s: &str) -> PropagationStatus {
        match s {
            "applied" => PropagationStatus::Applied,
            "failed" => PropagationStatus::Failed,
            "unsupported" => PropagationStatus::Unsupported,
            _ => PropagationStatus::Pending,
        }
    }
}

/// One registration: a phone (E.164) and/or an email (lower-cased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub reason: Option<String>,
    pub created_ms: i64,
    pub removed_ms: Option<i64>,
}

impl Entry {
    /// Its place in the registry's order (oldest first), for paging.
    pub fn position(&self) -> Position {
        Position {
            created_ms: self.created_ms,
            id: self.id.clone(),
        }
    }
}

/// One provider's propagation of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Propagation {
    pub entry_id: String,
    pub provider: ProviderId,
    pub status: PropagationStatus,
    /// Calls made so far.
    pub attempts: i64,
    /// When a pending row is due.
    pub next_attempt_ms: i64,
    /// What the last attempt came to, in words.
    pub message: Option<String>,
    /// The last failure's GraphQL code (PROVIDER_UNAVAILABLE…).
    pub error_code: Option<String>,
}

/// What an attempt came to, to record on its row.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: PropagationStatus,
    pub message: String,
    pub error_code: Option<String>,
    /// When to try again (pending only).
    pub next_attempt_ms: i64,
    /// Whether a call was made (counted in `attempts`).
    pub called: bool,
}

/// A due propagation a worker now holds.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub entry: Entry,
    pub provider: ProviderId,
    pub attempts: i64,
}

/// A place in the registry's order: (created, id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub created_ms: i64,
    pub id: String,
}

/// Which live entries a listing shows: those holding every key given.
#[derive(Clone, Debug, Default)]
pub struct EntryFilter {
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// The keys of a lookup that are in the registry.
#[derive(Clone, Debug, Default)]
pub struct Registered {
    pub phones: HashSet<String>,
    pub emails: HashSet<String>,
}

const ENTRY_COLUMNS: &str = "id, phone, email, reason, created_ms, removed_ms";
const PROPAGATION_COLUMNS: &str =
    "entry_id, provider, status, attempts, next_attempt_ms, message, error_code";

fn entry(row: &AnyRow) -> Result<Entry, sqlx::Error> {
    Ok(Entry {
        id: row.try_get("id")?,
        phone: row.try_get("phone")?,
        email: row.try_get("email")?,
        reason: row.try_get("reason")?,
        created_ms: row.try_get("created_ms")?,
        removed_ms: row.try_get("removed_ms")?,
    })
}

/// A row of the outbox; `None` for a provider this version does not know.
fn propagation(row: &AnyRow) -> Result<Option<Propagation>, sqlx::Error> {
    let provider: String = row.try_get("provider")?;
    let Ok(provider) = provider.parse::<ProviderId>() else {
        return Ok(None);
    };
    let status: String = row.try_get("status")?;
    Ok(Some(Propagation {
        entry_id: row.try_get("entry_id")?,
        provider,
        status: PropagationStatus::parse(&status),
        attempts: row.try_get("attempts")?,
        next_attempt_ms: row.try_get("next_attempt_ms")?,
        message: row.try_get("message")?,
        error_code: row.try_get("error_code")?,
    }))
}

/// `$from, $from+1, …` for `count` values.
fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A new entry id: 128 random bits.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap_or_default();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn until(lease: Duration) -> i64 {
    now_ms() + lease.as_millis() as i64
}

impl Store {
    /// Records an entry for `phone` and/or `email` unless a live one holds exactly these keys;
    /// returns the live entry and whether it was made now.
    pub async fn add_dnc_entry(
        &self,
        phone: Option<&str>,
        email: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(Entry, bool), StoreError> {
        let key = format!("{}|{}", phone.unwrap_or(""), email.unwrap_or(""));
        // The existing entry may be removed between the insert and the read: then insert again.
        for _ in 0..3 {
            let id = new_id();
            let inserted = sqlx::query(
                "INSERT INTO do_not_contact_entries (id, entry_key, phone, email, reason, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(&key)
            .bind(phone)
            .bind(email)
            .bind(reason)
            .bind(now_ms())
            .execute(self.pool())
            .await;
            self.registry_changed().await;
            let _ = inserted?;
            let live = sqlx::query(&format!(
                "SELECT {ENTRY_COLUMNS} FROM do_not_contact_entries \
                 WHERE entry_key = $1 AND removed_ms IS NULL"
            ))
            .bind(&key)
            .fetch_optional(self.pool())
            .await?;
            if let Some(row) = live {
                let found = entry(&row)?;
                let made = found.id == id;
                return Ok((found, made));
            }
        }
        Err(StoreError::Query(sqlx::Error::RowNotFound))
    }

    /// Takes `provider`'s propagation of `entry_id` for `holder` until `lease` from now: a new
    /// row is inserted pending and held; an existing one is taken unless it is applied or
    /// another holder's lease on it still runs. When `holder` now holds it: the calls made so
    /// far.
    pub async fn open_dnc_propagation(
        &self,
        entry_id: &str,
        provider: ProviderId,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO do_not_contact_outbox \
             (entry_id, provider, status, attempts, next_attempt_ms, claimed_until, claimed_by, updated_ms) \
             VALUES ($1, $2, $3, 0, $4, $5, $6, $4) ON CONFLICT DO NOTHING RETURNING provider",
        )
        .bind(entry_id)
        .bind(provider.as_str())
        .bind(PropagationStatus::Pending.as_str())
        .bind(now)
        .bind(until(lease))
        .bind(holder)
        .fetch_optional(self.pool())
        .await;
        self.registry_changed().await;
        if inserted?.is_some() {
            return Ok(Some(0));
        }
        let taken = sqlx::query(
            "UPDATE do_not_contact_outbox SET claimed_by = $1, claimed_until = $2 \
             WHERE entry_id = $3 AND provider = $4 AND status <> $5 \
             AND (claimed_until IS NULL OR claimed_until < $6) RETURNING attempts",
        )
        .bind(holder)
        .bind(until(lease))
        .bind(entry_id)
        .bind(provider.as_str())
        .bind(PropagationStatus::Applied.as_str())
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(taken.map(|row| row.try_get("attempts")).transpose()?)
    }

    /// Takes the due pending propagation to `provider` that has waited longest, for `holder`
    /// until `lease` from now. Rows of removed entries are left alone.
    pub async fn claim_due_dnc(
        &self,
        provider: ProviderId,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let now = now_ms();
        // PostgreSQL: a row another worker's statement is claiming is skipped, not waited for.
        let skip_locked = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let claimed = sqlx::query(&format!(
            "UPDATE do_not_contact_outbox SET claimed_by = $1, claimed_until = $2 \
             WHERE provider = $3 AND status = $4 AND (claimed_until IS NULL OR claimed_until < $5) \
             AND entry_id = (SELECT o.entry_id FROM do_not_contact_outbox o \
                 WHERE o.provider = $3 AND o.status = $4 AND o.next_attempt_ms <= $5 \
                 AND (o.claimed_until IS NULL OR o.claimed_until < $5) \
                 AND EXISTS (SELECT 1 FROM do_not_contact_entries e \
                             WHERE e.id = o.entry_id AND e.removed_ms IS NULL) \
                 ORDER BY o.next_attempt_ms LIMIT 1{skip_locked}) \
             RETURNING entry_id, attempts"
        ))
        .bind(holder)
        .bind(until(lease))
        .bind(provider.as_str())
        .bind(PropagationStatus::Pending.as_str())
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = claimed else {
            return Ok(None);
        };
        let entry_id: String = row.try_get("entry_id")?;
        let attempts: i64 = row.try_get("attempts")?;
        let found = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM do_not_contact_entries WHERE id = $1"
        ))
        .bind(&entry_id)
        .fetch_one(self.pool())
        .await?;
        Ok(Some(Claimed {
            entry: entry(&found)?,
            provider,
            attempts,
        }))
    }

    /// Extends `holder`'s lease on a propagation it is sending. `false` when it no longer
    /// holds it.
    pub async fn renew_dnc_claim(
        &self,
        entry_id: &str,
        provider: ProviderId,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE do_not_contact_outbox SET claimed_until = $1 \
             WHERE entry_id = $2 AND provider = $3 AND claimed_by = $4",
        )
        .bind(until(lease))
        .bind(entry_id)
        .bind(provider.as_str())
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(changed(&result))
    }

    /// Records what `holder`'s attempt came to and releases the row. Nothing changes when
    /// another holder has taken the row since (its own outcome will be recorded); `false` then.
    pub async fn finish_dnc_propagation(
        &self,
        entry_id: &str,
        provider: ProviderId,
        holder: &str,
        outcome: &Outcome,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE do_not_contact_outbox SET status = $1, attempts = attempts + $2, \
             next_attempt_ms = $3, message = $4, error_code = $5, claimed_by = NULL, \
             claimed_until = NULL, updated_ms = $6 \
             WHERE entry_id = $7 AND provider = $8 AND claimed_by = $9",
        )
        .bind(outcome.status.as_str())
        .bind(i64::from(outcome.called))
        .bind(outcome.next_attempt_ms)
        .bind(&outcome.message)
        .bind(outcome.error_code.as_deref())
        .bind(now_ms())
        .bind(entry_id)
        .bind(provider.as_str())
        .bind(holder)
        .execute(self.pool())
        .await;
        self.registry_changed().await;
        Ok(changed(&result?))
    }

    /// Gives a held row back as it was (a worker stopping mid-call): due again at once.
    pub async fn release_dnc_claim(
        &self,
        entry_id: &str,
        provider: ProviderId,
        holder: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE do_not_contact_outbox SET claimed_by = NULL, claimed_until = NULL \
             WHERE entry_id = $1 AND provider = $2 AND claimed_by = $3",
        )
        .bind(entry_id)
        .bind(provider.as_str())
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The propagations of these entries, in entry then provider order.
    pub async fn dnc_propagations(
        &self,
        entry_ids: &[String],
    ) -> Result<Vec<Propagation>, StoreError> {
        if entry_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {PROPAGATION_COLUMNS} FROM do_not_contact_outbox WHERE entry_id IN ({})",
            placeholders(1, entry_ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in entry_ids {
            query = query.bind(id);
        }
        let mut found = Vec::new();
        for row in query.fetch_all(self.pool()).await? {
            found.extend(propagation(&row)?);
        }
        found.sort_by(|a, b| {
            let place = |p: &Propagation| entry_ids.iter().position(|id| *id == p.entry_id);
            (place(a), a.provider).cmp(&(place(b), b.provider))
        });
        Ok(found)
    }

    /// Up to `limit` live entries matching `filter`, oldest first, after `after`.
    pub async fn dnc_entries(
        &self,
        filter: &EntryFilter,
        after: Option<&Position>,
        limit: u64,
    ) -> Result<Vec<Entry>, StoreError> {
        let (mut conditions, mut binds) = filter_sql(filter);
        if let Some(after) = after {
            let n = binds.len();
            conditions.push(format!(
                "(created_ms > ${} OR (created_ms = ${} AND id > ${}))",
                n + 1,
                n + 1,
                n + 2
            ));
            binds.push(Bind::Int(after.created_ms));
            binds.push(Bind::Text(after.id.clone()));
        }
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM do_not_contact_entries WHERE {} \
             ORDER BY created_ms, id LIMIT {}",
            conditions.join(" AND "),
            limit
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Text(s) => query.bind(s),
                Bind::Int(n) => query.bind(n),
            };
        }
        let rows = query.fetch_all(self.pool()).await?;
        Ok(rows.iter().map(entry).collect::<Result<_, _>>()?)
    }

    /// How many live entries match `filter`.
    pub async fn count_dnc_entries(&self, filter: &EntryFilter) -> Result<u64, StoreError> {
        let (conditions, binds) = filter_sql(filter);
        let sql = format!(
            "SELECT COUNT(*) AS n FROM do_not_contact_entries WHERE {}",
            conditions.join(" AND ")
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Text(s) => query.bind(s),
                Bind::Int(n) => query.bind(n),
            };
        }
        let n: i64 = query.fetch_one(self.pool()).await?.try_get("n")?;
        Ok(n.max(0) as u64)
    }

    /// Removes every live entry holding `phone` or `email` (the whole entry, whatever else
    /// it holds); returns them, removed.
    pub async fn remove_dnc_entries(
        &self,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut keys = Vec::new();
        let mut binds = Vec::new();
        for (column, value) in [("phone", phone), ("email", email)] {
            if let Some(value) = value {
                binds.push(value.to_string());
                keys.push(format!("{column} = ${}", binds.len() + 1));
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE do_not_contact_entries SET removed_ms = $1 \
             WHERE removed_ms IS NULL AND ({}) RETURNING {ENTRY_COLUMNS}",
            keys.join(" OR ")
        );
        let mut query = sqlx::query(&sql).bind(now_ms());
        for value in binds {
            query = query.bind(value);
        }
        let rows = query.fetch_all(self.pool()).await;
        self.registry_changed().await;
        let rows = rows?;
        let mut removed: Vec<Entry> = rows.iter().map(entry).collect::<Result<_, _>>()?;
        removed.sort_by_key(|e| (e.created_ms, e.id.clone()));
        Ok(removed)
    }

    /// Which of these phones (E.164) and emails (lower-cased) live entries hold: one
    /// statement, however many keys.
    pub async fn registered(
        &self,
        phones: &[String],
        emails: &[String],
    ) -> Result<Registered, StoreError> {
        let mut found = Registered::default();
        if phones.is_empty() && emails.is_empty() {
            return Ok(found);
        }
        let mut keys = Vec::new();
        if !phones.is_empty() {
            keys.push(format!("phone IN ({})", placeholders(1, phones.len())));
        }
        if !emails.is_empty() {
            keys.push(format!(
                "email IN ({})",
                placeholders(phones.len() + 1, emails.len())
            ));
        }
        let sql = format!(
            "SELECT phone, email FROM do_not_contact_entries WHERE removed_ms IS NULL AND ({})",
            keys.join(" OR ")
        );
        let mut query = sqlx::query(&sql);
        for key in phones.iter().chain(emails) {
            query = query.bind(key);
        }
        self.registry_reads.fetch_add(1, Ordering::Relaxed);
        for row in query.fetch_all(self.pool()).await? {
            let phone: Option<String> = row.try_get("phone")?;
            let email: Option<String> = row.try_get("email")?;
            found.phones.extend(phone.filter(|p| phones.contains(p)));
            found.emails.extend(email.filter(|e| emails.contains(e)));
        }
        Ok(found)
    }

    /// Registry lookups (`registered`) made through this store so far.
    pub fn registry_reads(&self) -> u64 {
        self.registry_reads.load(Ordering::Relaxed)
    }

    /// The version of the registry (entries and propagations) as this process knows it:
    /// bumped after each change made through it is committed. Read it before reading the
    /// registry, and what was read stands while it has not moved. Changes made by other
    /// processes on the same store are not seen here: the seam for them is
    /// `registry_changed`, called when one is announced.
    pub fn registry_version(&self) -> u64 {
        self.registry_version.load(Ordering::Acquire)
    }

    /// The registry changed (after the change is committed): its shared version moves first
    /// (with `[cache] redis_url`), then this process's; announced to other replicas.
    pub async fn registry_changed(&self) {
        self.announcer
            .bump_shared(&[crate::gateway::shared_cache::Version::Registry])
            .await;
        self.registry_changed_elsewhere();
        self.announcer
            .announce(crate::gateway::peers::Change::Registry);
    }

    /// Another replica announced a change of the registry.
    pub fn registry_changed_elsewhere(&self) {
        self.registry_version.fetch_add(1, Ordering::AcqRel);
    }

    /// The outbox's pending propagations (live entries only) and how long the oldest has
    /// waited since its entry was made (`/metrics`).
    pub async fn outbox_pending(&self) -> Result<OutboxPending, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS depth, MIN(e.created_ms) AS oldest \
             FROM do_not_contact_outbox o JOIN do_not_contact_entries e ON e.id = o.entry_id \
             WHERE o.status = $1 AND e.removed_ms IS NULL",
        )
        .bind(PropagationStatus::Pending.as_str())
        .fetch_one(self.pool())
        .await?;
        let depth: i64 = row.try_get("depth")?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        let oldest_age = oldest.map_or(Duration::ZERO, |created| {
            Duration::from_millis(u64::try_from(now_ms() - created).unwrap_or(0))
        });
        Ok(OutboxPending {
            depth: u64::try_from(depth).unwrap_or(0),
            oldest_age,
        })
    }
}

/// What `outbox_pending` reads.
#[derive(Clone, Copy, Debug)]
pub struct OutboxPending {
    pub depth: u64,
    pub oldest_age: Duration,
}

enum Bind {
    Text(String),
    Int(i64),
}

/// The conditions (and their values, `$1…`) of a listing's filter; live entries only.
fn filter_sql(filter: &EntryFilter) -> (Vec<String>, Vec<Bind>) {
    let mut conditions = vec!["removed_ms IS NULL".to_string()];
    let mut binds = Vec::new();
    for (column, value) in [("phone", &filter.phone), ("email", &filter.email)] {
        if let Some(value) = value {
            binds.push(Bind::Text(value.clone()));
            conditions.push(format!("{column} = ${}", binds.len()));
        }
    }
    (conditions, binds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn applied() -> Outcome {
        Outcome {
            status: PropagationStatus::Applied,
            message: "applied".into(),
            error_code: None,
            next_attempt_ms: now_ms(),
            called: true,
        }
    }

    #[tokio::test]
    async fn an_entry_is_made_once_per_keys_and_again_after_removal() {
        let (store, _dir) = testing::sqlite().await;
        let (first, made) = store
            .add_dnc_entry(Some("+14155550100"), None, Some("asked"))
            .await
            .unwrap();
        assert!(made);
        let (again, made) = store
            .add_dnc_entry(Some("+14155550100"), None, None)
            .await
            .unwrap();
        assert!(!made);
        assert_eq!(again, first, "the existing entry, its reason kept");
        let (both, made) = store
            .add_dnc_entry(Some("+14155550100"), Some("a@example.com"), None)
            .await
            .unwrap();
        assert!(made && both.id != first.id, "other keys: another entry");

        let found = store
            .registered(
                &["+14155550100".into(), "+14155550199".into()],
                &["a@example.com".into(), "b@example.com".into()],
            )
            .await
            .unwrap();
        assert_eq!(found.phones, HashSet::from(["+14155550100".to_string()]));
        assert_eq!(found.emails, HashSet::from(["a@example.com".to_string()]));
        assert_eq!(store.registry_reads(), 1);

        let removed = store
            .remove_dnc_entries(Some("+14155550100"), None)
            .await
            .unwrap();
        assert_eq!(removed.len(), 2, "every entry holding the phone");
        assert!(removed.iter().all(|e| e.removed_ms.is_some()));
        let found = store
            .registered(&["+14155550100".into()], &["a@example.com".into()])
            .await
            .unwrap();
        assert!(found.phones.is_empty() && found.emails.is_empty());
        let (later, made) = store
            .add_dnc_entry(Some("+14155550100"), None, None)
            .await
            .unwrap();
        assert!(made && later.id != first.id);
    }

    #[tokio::test]
    async fn a_propagation_has_one_holder_until_its_lease_runs_out() {
        let (store, _dir) = testing::sqlite().await;
        let (entry, _) = store
            .add_dnc_entry(Some("+14155550100"), None, None)
            .await
            .unwrap();
        let long = Duration::from_secs(30);
        let provider = ProviderId::Consuelo;
        assert_eq!(
            store
                .open_dnc_propagation(&entry.id, provider, "request", long)
                .await
                .unwrap(),
            Some(0)
        );
        assert_eq!(
            store
                .open_dnc_propagation(&entry.id, provider, "other", long)
                .await
                .unwrap(),
            None
        );
        assert!(
            store
                .claim_due_dnc(provider, "worker", long)
                .await
                .unwrap()
                .is_none(),
            "held by the request"
        );
        // The request's process dies: its lease runs out and a worker takes the row.
        store
            .renew_dnc_claim(&entry.id, provider, "request", Duration::ZERO)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let claimed = store
            .claim_due_dnc(provider, "worker", long)
            .await
            .unwrap()
            .expect("due and unleased");
        assert_eq!(claimed.entry.id, entry.id);
        assert!(store
            .claim_due_dnc(provider, "worker-2", long)
            .await
            .unwrap()
            .is_none());
        // The late request's outcome is not recorded: the worker holds the row now.
        assert!(!store
            .finish_dnc_propagation(&entry.id, provider, "request", &applied())
            .await
            .unwrap());
        assert!(store
            .finish_dnc_propagation(&entry.id, provider, "worker", &applied())
            .await
            .unwrap());
        let rows = store
            .dnc_propagations(std::slice::from_ref(&entry.id))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, PropagationStatus::Applied);
        assert_eq!(rows[0].attempts, 1);
        assert_eq!(
            store
                .open_dnc_propagation(&entry.id, provider, "again", long)
                .await
                .unwrap(),
            None,
            "an applied row is not sent again"
        );
    }

    #[tokio::test]
    async fn entries_page_oldest_first() {
        let (store, _dir) = testing::sqlite().await;
        for n in 0..5 {
            store
                .add_dnc_entry(Some(&format!("+1415555010{n}")), None, None)
                .await
                .unwrap();
        }
        let all = EntryFilter::default();
        let first = store.dnc_entries(&all, None, 3).await.unwrap();
        let rest = store
            .dnc_entries(&all, Some(&first[2].position()), 3)
            .await
            .unwrap();
        assert_eq!(first.len() + rest.len(), 5);
        let phones: HashSet<_> = first.iter().chain(&rest).map(|e| e.phone.clone()).collect();
        assert_eq!(phones.len(), 5, "each entry once");
        assert_eq!(store.count_dnc_entries(&all).await.unwrap(), 5);
        let one = EntryFilter {
            phone: Some("+14155550102".into()),
            email: None,
        };
        assert_eq!(store.dnc_entries(&one, None, 10).await.unwrap().len(), 1);
        assert_eq!(store.count_dnc_entries(&one).await.unwrap(), 1);
    }
}
