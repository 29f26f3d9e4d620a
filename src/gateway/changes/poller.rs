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
//! from how it answered the write). A write landing while a poll lists is not reported either:
//! the poll reads the snapshot before and after its listing, and reports a record only where
//! the listing differs from both.

use super::super::Gateway;
use super::fingerprint;
use crate::change::{Change, ChangeKind, ChangeOrigin};
use crate::contact::{Contact, GlobalId, ProviderId};
use crate::providers::{Capability, ListQuery, Provider, ProviderError};
use crate::store::Store;
use std::collections::{HashMap, HashSet};
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

/// What a listing shows against the snapshot read before and after it.
#[derive(Debug, Default, PartialEq)]
struct Comparison {
    /// Records new or changed, in listing order.
    changed: Vec<(ChangeKind, Contact)>,
    /// Ids gone from the listing, sorted.
    missing: Vec<String>,
}

/// A record is new or changed when its fingerprint matches neither snapshot (a write through
/// the gateway during the listing updated the snapshot and published itself); it is missing
/// when both snapshots hold it and the listing does not (a record the gateway deleted
/// meanwhile left the snapshot; one it created meanwhile was not in it before).
fn compare(
    listed: Vec<Contact>,
    before: &HashMap<String, String>,
    after: &HashMap<String, String>,
) -> Comparison {
    let mut found = Comparison::default();
    let mut seen = HashSet::new();
    for contact in listed {
        seen.insert(contact.native_id.clone());
        let hash = fingerprint(&contact);
        let (was, is) = (
            before.get(&contact.native_id),
            after.get(&contact.native_id),
        );
        if was == Some(&hash) || is == Some(&hash) {
            continue;
        }
        let kind = match (was, is) {
            (None, None) => ChangeKind::Created,
            _ => ChangeKind::Updated,
        };
        found.changed.push((kind, contact));
    }
    found.missing = before
        .keys()
        .filter(|id| !seen.contains(*id) && after.contains_key(*id))
        .cloned()
        .collect();
    found.missing.sort();
    found
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
        let baseline = self
            .store
            .poll_baseline(self.id)
            .await
            .map_err(|e| e.to_string())?;
        let before = self
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
        // A write through the gateway while the listing ran has published itself and updated
        // the snapshot: what matches the snapshot before or after the listing is no change.
        let after = self
            .store
            .poll_snapshot(self.id)
            .await
            .map_err(|e| e.to_string())?;
        let found = compare(listed, &before, &after);
        let now = chrono::Utc::now();
        let mut published = 0;
        for (kind, contact) in found.changed {
            let change = Change::of_contact(kind, contact, ChangeOrigin::Poller, now);
            self.gateway.changes.publish(change).await;
            published += 1;
        }
        for native_id in &found.missing {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn contact(id: &str, company: &str) -> Contact {
        let mut c = Contact::new(ProviderId::Consuelo, id, Value::Null);
        c.company = Some(company.into());
        c
    }

    fn snapshot(contacts: &[Contact]) -> HashMap<String, String> {
        contacts
            .iter()
            .map(|c| (c.native_id.clone(), fingerprint(c)))
            .collect()
    }

    #[test]
    fn a_listing_is_compared_with_the_snapshots_around_it() {
        let last = [contact("a", "A"), contact("b", "B"), contact("c", "C")];
        let known = snapshot(&last);
        // At the provider: b changed, c deleted, d created.
        let listed = vec![contact("a", "A"), contact("b", "B2"), contact("d", "D")];
        let found = compare(listed, &known, &known);
        assert_eq!(
            found.changed,
            vec![
                (ChangeKind::Updated, contact("b", "B2")),
                (ChangeKind::Created, contact("d", "D"))
            ]
        );
        assert_eq!(found.missing, ["c"]);
    }

    #[test]
    fn writes_through_the_gateway_during_the_listing_are_not_reported_again() {
        let before = snapshot(&[contact("a", "A"), contact("b", "B"), contact("c", "C")]);
        // Through the gateway, while the poll listed: a updated (the listing saw the new
        // value), b updated (the listing saw the old one), c deleted (the listing lacks it),
        // e created after the listing passed its place.
        let after = snapshot(&[contact("a", "A2"), contact("b", "B2"), contact("e", "E")]);
        let listed = vec![contact("a", "A2"), contact("b", "B")];
        let found = compare(listed, &before, &after);
        assert_eq!(
            found,
            Comparison::default(),
            "nothing the gateway did is reported"
        );
    }
}
