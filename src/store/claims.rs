//! Leases on names, shared by every process on the store: a writer that must not race another
//! (two upserts of one new email) holds the name's claim while it works; a process that dies
//! holding one releases it when its lease runs out.

use super::{changed, now_ms, Store, StoreError};
use std::time::Duration;

impl Store {
    /// Takes `name` for `holder` until `lease` from now, unless another holder's lease on it
    /// is still running. `true` when taken.
    pub async fn try_claim(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let until = now + lease.as_millis() as i64;
        let result = sqlx::query(
            "INSERT INTO claims (name, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE claims.until_ms < $4 OR claims.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(changed(&result))
    }

    /// Waits (polling) until `name` is taken for `holder`, at most `wait`. `false` when the
    /// wait ran out.
    pub async fn claim(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(10);
        loop {
            if self.try_claim(name, holder, lease).await? {
                return Ok(true);
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Ok(false);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Gives `name` back (only if `holder` still holds it).
    pub async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM claims WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing;
    use std::time::Duration;

    #[tokio::test]
    async fn a_claim_is_held_until_released_or_its_lease_runs_out() {
        let (store, _dir) = testing::sqlite().await;
        let long = Duration::from_secs(30);
        assert!(store.try_claim("match:a", "p1", long).await.unwrap());
        assert!(!store.try_claim("match:a", "p2", long).await.unwrap());
        assert!(
            store.try_claim("match:a", "p1", long).await.unwrap(),
            "its holder renews it"
        );
        store.release("match:a", "p2").await.unwrap();
        assert!(
            !store.try_claim("match:a", "p2", long).await.unwrap(),
            "only its holder releases"
        );
        store.release("match:a", "p1").await.unwrap();
        assert!(store
            .try_claim("match:a", "p2", Duration::from_millis(50))
            .await
            .unwrap());
        // A holder that died: its lease runs out and the name can be taken.
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(store
            .claim("match:a", "p3", long, Duration::from_secs(1))
            .await
            .unwrap());
    }
}
