//! Change events: published in one place (`Changes::publish`) by every write through the
//! gateway once the provider acknowledged it, and by the pollers; delivered to this process's
//! subscribers at once, to every other replica's through the store, and to webhooks through a
//! durable queue.
//!
//! Across replicas: `publish` records the change in the store (`change_events`), numbered in
//! commit order, in the same transaction as its webhook deliveries and its poll snapshot
//! upkeep; every replica tails the table (`TAIL_EVERY`) and passes on what other processes
//! published. The same on SQLite and PostgreSQL; a replica sees another's change within
//! `TAIL_EVERY` plus a query.

pub mod poller;
pub mod webhooks;

use super::consent;
use super::Gateway;
use crate::change::{Change, ChangeKind, ChangeOrigin, DoNotContactChange};
use crate::config::{Config, WebhookConfig};
use crate::contact::{Contact, GlobalId, ProviderId};
use crate::store::changes::{NewDelivery, SnapshotUpkeep};
use crate::store::{now_ms, Store};
use futures::Stream;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How often a replica reads the changes other processes published.
pub const TAIL_EVERY: Duration = Duration::from_millis(200);
/// How long published changes stay in the store for the replicas tailing it.
const KEEP_EVENTS: Duration = Duration::from_secs(3600);
/// How long delivered webhook rows are kept (for operators looking into a delivery).
const KEEP_DELIVERED: Duration = Duration::from_secs(86_400);
/// How often old events and delivered rows are forgotten.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);
/// Changes a slow subscriber may fall behind by before it misses some (it is told in the log).
const BACKLOG: usize = 1024;

/// This process's change hub.
pub struct Changes {
    local: broadcast::Sender<Arc<Change>>,
    /// `true` once the process shuts down: every subscription completes.
    closing: watch::Sender<bool>,
    /// Bumped when a delivery is queued here, so this process's webhook workers send it at once.
    queued: watch::Sender<u64>,
    store: Option<Store>,
    /// Names this process in the events it records (its own are not passed on twice).
    origin: String,
    webhooks: Vec<WebhookConfig>,
    /// Providers with a poller, and its interval.
    polled: BTreeMap<ProviderId, Duration>,
    /// WebSocket connections open: shutdown waits for their subscriptions' `complete`.
    sockets: Arc<watch::Sender<usize>>,
}

/// Held while a WebSocket connection is open (see `Changes::socket_opened`).
pub struct OpenSocket(Arc<watch::Sender<usize>>);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Changes {
    /// A hub for this process's subscribers only (no store, no webhooks, no pollers).
    pub fn new(origin: String) -> Self {
        Changes {
            local: broadcast::channel(BACKLOG).0,
            closing: watch::channel(false).0,
            queued: watch::channel(0).0,
            store: None,
            origin,
            webhooks: Vec::new(),
            polled: BTreeMap::new(),
            sockets: Arc::new(watch::channel(0).0),
        }
    }

    /// Sharing changes through `store` with every process on it, with the configured webhooks
    /// and pollers.
    pub fn shared(mut self, store: Store, config: &Config) -> Self {
        self.store = Some(store);
        self.webhooks = config.webhooks.clone();
        self.polled = config
            .providers
            .iter()
            .filter_map(|(id, p)| p.poll_interval.map(|every| (*id, every)))
            .collect();
        self
    }

    /// Every change from now on, this process's and the other replicas', until the process
    /// shuts down (then the stream ends). A subscriber more than `BACKLOG` changes behind
    /// misses the oldest (logged).
    pub fn subscribe(&self) -> impl Stream<Item = Arc<Change>> + Send + 'static {
        let state = (self.local.subscribe(), self.closing.subscribe());
        futures::stream::unfold(state, |(mut changes, mut closing)| async move {
            loop {
                if *closing.borrow_and_update() {
                    return None;
                }
                tokio::select! {
                    received = changes.recv() => match received {
                        Ok(change) => return Some((change, (changes, closing))),
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "a subscriber fell behind and missed changes");
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    changed = closing.changed() => if changed.is_err() {
                        return None;
                    },
                }
            }
        })
    }

    /// Completes every subscription, now and from now on (the process is shutting down).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Whether the process is shutting down.
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Counts a WebSocket connection open until the guard drops.
    pub fn socket_opened(&self) -> OpenSocket {
        self.sockets.send_modify(|n| *n += 1);
        OpenSocket(self.sockets.clone())
    }

    /// After `close`: waits (at most `within`) for the WebSocket connections to send their
    /// subscriptions' `complete` and close (an upgraded connection is no longer the HTTP
    /// server's to wait for).
    pub async fn sockets_closed(&self, within: Duration) {
        let mut open = self.sockets.subscribe();
        if tokio::time::timeout(within, open.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!("WebSocket connections still open at shutdown: closing them anyway");
        }
    }

    /// Publishes a change: recorded in the store (for the other replicas, the webhooks and
    /// the poller's snapshot) and passed to this process's subscribers. A store failure is
    /// logged: the write it reports has happened, so it is not failed for it.
    pub async fn publish(&self, change: Change) {
        let change = Arc::new(change);
        if let Some(store) = &self.store {
            match self.record(store, &change).await {
                Ok(queued) => {
                    if queued {
                        self.queued.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
                Err(e) => tracing::warn!(
                    kind = %change.kind, id = %change.id, error = %e,
                    "a change could not be recorded: other replicas and webhooks miss it"
                ),
            }
        }
        // No subscriber is not an error.
        let _ = self.local.send(change);
    }

    /// Records `change` with its webhook deliveries and snapshot upkeep; whether a delivery
    /// was queued.
    async fn record(&self, store: &Store, change: &Change) -> Result<bool, String> {
        let body = serde_json::to_string(change).map_err(|e| e.to_string())?;
        let hooks: Vec<&WebhookConfig> = self
            .webhooks
            .iter()
            .filter(|w| w.events.contains(&change.kind))
            .collect();
        let deliveries = if hooks.is_empty() {
            Vec::new()
        } else {
            let registered = match &change.contact {
                Some(contact) => registered(store, contact).await,
                None => false,
            };
            let payload = webhook_body(change, registered).to_string();
            hooks
                .iter()
                .map(|w| NewDelivery {
                    url: w.url.clone(),
                    kind: change.kind.as_str().to_string(),
                    body: payload.clone(),
                })
                .collect()
        };
        let upkeep = self.snapshot_upkeep(change);
        store
            .record_change(
                &self.origin,
                &body,
                change.at.timestamp_millis(),
                &deliveries,
                upkeep.as_ref(),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(!deliveries.is_empty())
    }

    /// The poll snapshot row a change of a polled provider's contact updates, so its poller
    /// does not report it again.
    fn snapshot_upkeep(&self, change: &Change) -> Option<SnapshotUpkeep> {
        let provider = change.provider.filter(|p| self.polled.contains_key(p))?;
        let native_id = GlobalId::parse(&change.id).ok()?.native_id;
        let hash = match change.kind {
            ChangeKind::Created | ChangeKind::Updated => {
                Some(fingerprint(change.contact.as_ref()?))
            }
            ChangeKind::Deleted => None,
            ChangeKind::DoNotContact => return None,
        };
        Some(SnapshotUpkeep {
            provider,
            native_id,
            hash,
        })
    }
}

/// Whether any of the contact's phones or emails is in the registry (a failure reads as no).
async fn registered(store: &Store, contact: &Contact) -> bool {
    let (mut phones, mut emails) = (Vec::new(), Vec::new());
    for key in consent::keys_of(contact) {
        match key {
            consent::RegistryKey::Phone(p) => phones.push(p),
            consent::RegistryKey::Email(e) => emails.push(e),
        }
    }
    match store.registered(&phones, &emails).await {
        Ok(found) => !found.phones.is_empty() || !found.emails.is_empty(),
        Err(e) => {
            tracing::warn!(error = %e, "the registry could not be read for a webhook body");
            false
        }
    }
}

/// A record's fingerprint as pollers compare them: the unified contact (what the gateway
/// shows of it), without `raw`, hashed. A change only in fields the gateway does not read is
/// not a change.
pub fn fingerprint(contact: &Contact) -> String {
    let mut value = serde_json::to_value(contact).unwrap_or_default();
    if let Value::Object(map) = &mut value {
        map.remove("raw");
        map.remove("source");
    }
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A time as GraphQL's `DateTime` shows it.
fn datetime(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The `ContactChange` as JSON, as a subscription selecting every field would show it (the
/// webhook body). `registered`: a phone or email of the contact is in the registry.
pub fn webhook_body(change: &Change, registered: bool) -> Value {
    let upper = |s: &str| s.to_ascii_uppercase();
    let contact = change.contact.as_ref().map(|c| {
        let consent = match (&c.consent, registered) {
            (None, false) => Value::Null,
            (said, _) => {
                let said = said.clone().unwrap_or_default();
                json!({
                    "emailOptIn": said.email_opt_in,
                    "smsOptIn": said.sms_opt_in,
                    "doNotContact": if registered { Some(true) } else { said.do_not_contact },
                })
            }
        };
        json!({
            "id": c.global_id().to_string(),
            "provider": upper(c.provider.as_str()),
            "nativeId": c.native_id,
            "name": c.name,
            "displayName": c.display_name(),
            "emails": c.emails.iter().map(|e| json!({
                "address": e.address, "type": e.kind, "primary": e.primary,
            })).collect::<Vec<_>>(),
            "phones": c.phones.iter().map(|p| json!({
                "number": p.number, "e164": p.e164, "type": p.kind, "primary": p.primary,
            })).collect::<Vec<_>>(),
            "primaryEmail": c.primary_email().map(|e| &e.address),
            "primaryPhone": c.primary_phone().map(|p| p.best()),
            "company": c.company,
            "notes": c.notes,
            "tags": c.tags,
            "stage": c.stage,
            "groups": c.groups.iter().map(|g| json!({
                "id": g.id,
                "name": g.name,
                "kind": match g.kind.as_str() {
                    kind @ ("inbox" | "location" | "list" | "workspace") => upper(kind),
                    _ => "OTHER".to_string(),
                },
            })).collect::<Vec<_>>(),
            "customFields": c.custom_fields,
            "consent": consent,
            "isTest": c.is_test,
            "createdAt": c.created_at.as_ref().map(datetime),
            "updatedAt": c.updated_at.as_ref().map(datetime),
            "source": match c.source {
                crate::contact::ContactSource::Provider => "PROVIDER",
                crate::contact::ContactSource::GatewayLedger => "GATEWAY_LEDGER",
            },
            "raw": c.raw,
        })
    });
    json!({
        "kind": change.kind.as_str(),
        "id": change.id,
        "provider": change.provider.map(|p| upper(p.as_str())),
        "origin": match change.origin {
            ChangeOrigin::Gateway => "GATEWAY",
            ChangeOrigin::Poller => "POLLER",
        },
        "at": datetime(&change.at),
        "contact": contact,
        "doNotContact": change.do_not_contact.as_ref().map(|d| json!({
            "phone": d.phone, "email": d.email, "reason": d.reason, "listed": d.listed,
        })),
    })
}

impl Gateway {
    /// Publishes that `contact` was created or updated through the gateway.
    pub(crate) async fn publish_contact(&self, kind: ChangeKind, contact: &Contact) {
        let change = Change::of_contact(
            kind,
            contact.clone(),
            ChangeOrigin::Gateway,
            chrono::Utc::now(),
        );
        self.changes.publish(change).await;
    }

    /// Publishes a change to `id` the gateway could not read back (tags changed, then the
    /// contact's read failed): the change carries no contact.
    pub(crate) async fn publish_unread(&self, kind: ChangeKind, id: &GlobalId) {
        let change = Change {
            contact: None,
            kind,
            ..Change::deleted(id, ChangeOrigin::Gateway, chrono::Utc::now())
        };
        self.changes.publish(change).await;
    }

    /// Publishes that `id` was deleted through the gateway.
    pub(crate) async fn publish_deleted(&self, id: &GlobalId) {
        let change = Change::deleted(id, ChangeOrigin::Gateway, chrono::Utc::now());
        self.changes.publish(change).await;
    }

    /// Publishes that a registry entry was added (`listed`) or removed.
    pub(crate) async fn publish_do_not_contact(
        &self,
        entry: &crate::store::dnc::Entry,
        listed: bool,
    ) {
        let change = Change::do_not_contact(
            &entry.id,
            DoNotContactChange {
                phone: entry.phone.clone(),
                email: entry.email.clone(),
                reason: entry.reason.clone(),
                listed,
            },
            chrono::Utc::now(),
        );
        self.changes.publish(change).await;
    }
}

/// What keeps changes moving while the gateway serves: the tail of other replicas' changes,
/// the pollers, the webhook workers.
pub struct ChangeWorkers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ChangeWorkers {
    /// Starts them; `None` for a gateway without a store.
    pub fn start(gateway: Arc<Gateway>) -> Option<ChangeWorkers> {
        let store = gateway.store.clone()?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(
            tail(gateway.clone(), store.clone(), stopped.clone())
                .instrument(tracing::info_span!("changes")),
        )];
        for (id, every) in &gateway.changes.polled {
            let span = tracing::info_span!("poller", provider = %id);
            tasks.push(tokio::spawn(
                poller::run(gateway.clone(), store.clone(), *id, *every, stopped.clone())
                    .instrument(span),
            ));
        }
        let client = webhooks::client();
        for hook in &gateway.changes.webhooks {
            let span = tracing::info_span!("webhook", url = %webhooks::shown_url(&hook.url));
            tasks.push(tokio::spawn(
                webhooks::run(
                    webhooks::Worker {
                        store: store.clone(),
                        client: client.clone(),
                        hook: hook.clone(),
                        holder: format!("{}/webhook", gateway.process_id),
                        queued: gateway.changes.queued.subscribe(),
                    },
                    stopped.clone(),
                )
                .instrument(span),
            ));
        }
        Some(ChangeWorkers { stop, tasks })
    }

    /// Stops them: a delivery in flight is dropped and given back, a poll in flight dropped.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Passes on the changes other processes record, and forgets old events and deliveries.
async fn tail(gateway: Arc<Gateway>, store: Store, mut stop: watch::Receiver<bool>) {
    let changes = &gateway.changes;
    // From now on: a subscriber gets what happens after it subscribed.
    let mut last = loop {
        match store.last_change_seq().await {
            Ok(seq) => break seq,
            Err(e) => tracing::warn!(error = %e, "cannot read the change events"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    };
    let mut every = tokio::time::interval(TAIL_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cleanup = tokio::time::interval(CLEANUP_EVERY);
    cleanup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = cleanup.tick() => {
                let now = now_ms();
                let events = store.delete_changes_before(now - KEEP_EVENTS.as_millis() as i64).await;
                let delivered = store.delete_delivered_before(now - KEEP_DELIVERED.as_millis() as i64).await;
                if let Err(e) = events.and(delivered) {
                    tracing::warn!(error = %e, "cannot forget old change events");
                }
                continue;
            }
            _ = stop.changed() => return,
        }
        const PAGE: i64 = 500;
        loop {
            let rows = match store.changes_after(last, PAGE).await {
                Ok(rows) => {
                    failing = false;
                    rows
                }
                Err(e) => {
                    // Once per outage, not five times a second.
                    if !failing {
                        tracing::warn!(error = %e, "cannot read the change events");
                    }
                    failing = true;
                    break;
                }
            };
            let full = rows.len() as i64 == PAGE;
            for row in rows {
                last = row.seq;
                if row.origin == changes.origin {
                    continue;
                }
                match serde_json::from_str::<Change>(&row.body) {
                    Ok(change) => {
                        let _ = changes.local.send(Arc::new(change));
                    }
                    Err(e) => {
                        tracing::warn!(seq = row.seq, error = %e, "an unreadable change event")
                    }
                }
            }
            if !full {
                break;
            }
        }
    }
}
