//! A provider's poller (`[providers.<id>] poll_interval_secs`): no provider documents an
//! updated-since filter, so every interval the poller lists the provider whole and compares
//! each record's fingerprint with the last listing, kept in the store (`poll_snapshots`):
//! new ids are CREATED, changed ones UPDATED, missing ones DELETED. The first poll records
//! the baseline and reports nothing.
//!
//! One replica polls a provider at a time: the holder of the `poll:<id>` claim in the store,
//! renewed at every poll and page (a replica that dies gives it up when its lease runs out).
//! Its calls go through the provider's one upstream client, so its rate bucket, pauses and
//! breaker apply to them as to any other.
//!
//! Writes through the gateway update the snapshot as they publish their own change, so the
//! next poll does not report them again (unless the provider lists the record differently
//! from how it answered the write, or the write lands while a poll is listing: then the poll
//! reports it once more, as UPDATED).

use super::super::Gateway;
use super::fingerprint;
use crate::change::{Change, ChangeKind, ChangeOrigin};
use crate::contact::{Contact, GlobalId, ProviderId};
use crate::providers::{Capability, ListQuery, Provider, ProviderError};
use crate::store::Store;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Records asked per listing call.
const PAGE: u32 = 100;
/// A listing longer than this is not compared (a provider that never ends its listing).
const MAX_RECORDS: usize = 1_000_000;

/// How long the poll claim holds without renewal.
fn lease(every: Duration) -> Duration {
    every * 2 + Duration::from_secs(30)
}

/// Polls `id` every `every` while this replica holds its claim, until `stop`.
pub async fn run(
    gateway: Arc<Gateway>,
    store: Store,
    id: ProviderId,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let claim = format!("poll:{id}");
    let holder = format!("{}/poller/{id}", gateway.process_id);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => break,
        }
        match store.try_claim(&claim, &holder, lease(every)).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the poll claim");
                continue;
            }
        }
        let poll = Poll {
            gateway: &gateway,
            store: &store,
            id,
            claim: &claim,
            holder: &holder,
            lease: lease(every),
        };
        tokio::select! {
            result = poll.once() => match result {
                Ok(0) => {}
                Ok(n) => tracing::info!(changes = n, "poll found changes"),
                Err(e) => tracing::warn!(error = %e, "poll failed; trying again at the next interval"),
            },
            _ = stop.changed() => break,
        }
    }
    // Another replica may take over at once.
    if let Err(e) = store.release(&claim, &holder).await {
        tracing::warn!(error = %e, "cannot release the poll claim");
    }
}

/// One poll of one provider.
struct Poll<'a> {
    gateway: &'a Gateway,
    store: &'a Store,
    id: ProviderId,
    claim: &'a str,
    holder: &'a str,
    lease: Duration,
}

impl Poll<'_> {
    /// Lists the provider and publishes what changed since the last listing; how many
    /// changes it published.
    async fn once(&self) -> Result<usize, String> {
        let provider = self
            .gateway
            .registry
            .capable(self.id, Capability::List)
            .map_err(|e| e.to_string())?;
        // Read before listing: a write landing meanwhile is then reported once more rather
        // than overwritten by an older listing.
        let baseline = self
            .store
            .poll_baseline(self.id)
            .await
            .map_err(|e| e.to_string())?;
        let known = self
            .store
            .poll_snapshot(self.id)
            .await
            .map_err(|e| e.to_string())?;
        let listed = self.list_all(provider.as_ref()).await?;
        if baseline.is_none() {
            let rows: Vec<(String, String)> = listed
                .iter()
                .map(|c| (c.native_id.clone(), fingerprint(c)))
                .collect();
            self.store
                .record_poll_baseline(self.id, &rows)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(records = rows.len(), "poll baseline recorded");
            return Ok(0);
        }
        let now = chrono::Utc::now();
        let mut published = 0;
        let mut seen = HashSet::new();
        for contact in listed {
            seen.insert(contact.native_id.clone());
            let kind = match known.get(&contact.native_id) {
                None => ChangeKind::Created,
                Some(hash) if *hash != fingerprint(&contact) => ChangeKind::Updated,
                Some(_) => continue,
            };
            let change = Change::of_contact(kind, contact, ChangeOrigin::Poller, now);
            self.gateway.changes.publish(change).await;
            published += 1;
        }
        let mut missing: Vec<&String> = known.keys().filter(|id| !seen.contains(*id)).collect();
        missing.sort();
        for native_id in missing {
            // A listing paged by offset can skip a record when another is created meanwhile:
            // where the provider can be asked for one record, it confirms the deletion.
            if provider.capabilities().get {
                match provider.get(native_id).await {
                    Ok(None) => {}
                    Ok(Some(_)) => continue,
                    Err(e) => {
                        tracing::warn!(native_id = %native_id, error = %e, "cannot confirm a deletion");
                        continue;
                    }
                }
            }
            let id = GlobalId::new(self.id, native_id.clone());
            let change = Change::deleted(&id, ChangeOrigin::Poller, now);
            self.gateway.changes.publish(change).await;
            published += 1;
        }
        self.store
            .record_poll(self.id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(published)
    }

    /// The provider's whole listing, each record once, renewing the claim at every page.
    async fn list_all(&self, provider: &dyn Provider) -> Result<Vec<Contact>, String> {
        let query = ListQuery::default();
        let mut contacts = Vec::new();
        let mut ids = HashSet::new();
        let mut offset = 0u64;
        let mut previous_first: Option<String> = None;
        loop {
            let chunk = provider
                .list(&query, offset, PAGE)
                .await
                .map_err(|e: ProviderError| e.to_string())?;
            // A provider that ignores the paging parameters would answer the same page forever.
            let first = chunk.contacts.first().map(|c| c.native_id.clone());
            if first.is_some() && first == previous_first {
                return Err("the listing repeated a page instead of advancing".into());
            }
            previous_first = first;
            offset += chunk.contacts.len() as u64;
            let exhausted = chunk.exhausted || chunk.contacts.is_empty();
            for contact in chunk.contacts {
                if ids.insert(contact.native_id.clone()) {
                    contacts.push(contact);
                }
            }
            if exhausted {
                return Ok(contacts);
            }
            if contacts.len() > MAX_RECORDS {
                return Err(format!("the listing holds over {MAX_RECORDS} records"));
            }
            match self
                .store
                .try_claim(self.claim, self.holder, self.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Err("another replica took the poll over".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}
