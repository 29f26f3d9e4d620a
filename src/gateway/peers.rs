//! Invalidation shared between replicas through Redis (`[cache] redis_url`).
//!
//! **What travels.** Exactly what a write invalidates here: the contact record it touched
//! (`ReadCache::invalidate`), its provider's list windows (`invalidate_provider`) and the
//! do-not-contact registry's version (`Store::registry_changed`). Each is published on one
//! Redis channel (`CHANNEL`) once it is done locally, as JSON naming the replica it comes from;
//! every other replica's subscriber bumps the same stamps (`ReadCache::apply`,
//! `Store::registry_changed_elsewhere`), which retires its cached records and list windows
//! and, through them, the response-cache answers built on them. The replica that took the
//! write is strict as before (its stamps move before the write is acknowledged); the others
//! follow within a publish and a delivery (milliseconds; the contract says within 1 s).
//!
//! **Redis unreachable.** Redis's publish/subscribe delivers at most once, to the subscribers
//! connected then: a replica that is not subscribed cannot know what it missed. So:
//! - the subscriber pings Redis every second on its connection; a failed ping, a closed
//!   connection or a failed subscribe is a loss (logged once as a warning);
//! - while lost, the replica retires everything it cached every `STALE_WHILE_LOST` (5 s):
//!   no record, window or answer is served more than about 5 s (plus the ≤ 2 s it takes to
//!   notice) after a write through another replica. Writes go on and are strict locally;
//! - on reconnect (logged at info) it retires everything it cached before, and announces
//!   `all` so that the others retire theirs too: their writes' announcements may have been
//!   lost on the way to it, and its own announcements may have been lost on the way to them.
//!
//! A publish that fails is not retried (the `all` after reconnecting covers it).
//!
//! **The shared cache tier** (`shared_cache`) uses the publisher's connection, and trusts
//! Redis only while this subscriber is connected: a loss makes it untrusted at once, and on
//! reconnect (each tick until it takes) its epoch is bumped before it is read again.

use super::shared_cache::{Shared, SharedTier, Version};
use super::Gateway;
use crate::contact::{GlobalId, ProviderId};
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// The channel every replica publishes its invalidations on and subscribes to.
pub const CHANNEL: &str = "contact-gateway:invalidations";

/// While Redis is unreachable, everything cached is retired this often.
pub const STALE_WHILE_LOST: Duration = Duration::from_secs(5);

/// How often the subscriber checks its connection, and how long a ping may take.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Between two attempts to reconnect.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// One invalidation, as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// A contact record (and its provider's list windows), as `ReadCache::invalidate`.
    Contact(String),
    /// A provider's list windows, as `ReadCache::invalidate_provider`.
    Provider(ProviderId),
    /// The do-not-contact registry, as `Store::registry_changed`.
    Registry,
    /// Everything: the sender may have missed announcements, or its own may have been lost.
    All,
}

#[derive(Debug, Serialize, Deserialize)]
struct Message {
    from: String,
    change: Change,
}

/// Where the read cache and the store hand their local invalidations to be published, and
/// find the shared cache tier (`shared_cache`) their writes bump first.
#[derive(Clone, Default)]
pub struct Announcer {
    sender: Arc<OnceLock<mpsc::UnboundedSender<Change>>>,
    pub shared: SharedTier,
}

impl Announcer {
    pub fn announce(&self, change: Change) {
        if let Some(sender) = self.sender.get() {
            let _ = sender.send(change);
        }
    }

    /// Bumps the shared `versions` when the tier is configured: call it after the
    /// write's provider answered and before its local stamp is taken.
    pub async fn bump_shared(&self, versions: &[Version]) {
        if let Some(shared) = self.shared.configured() {
            shared.bump(versions).await;
        }
    }
}

/// The Redis side of one replica: publishes its invalidations, applies the others', and
/// answers `ping` (for readiness).
pub struct Peers {
    /// Set once the publisher has connected (it reconnects by itself afterwards).
    publisher: Arc<OnceLock<ConnectionManager>>,
    /// An announcement of this replica's was dropped or failed: the others must hear `all`.
    missed: Arc<AtomicBool>,
    /// The cache tier on the same connection: trusted only while the subscriber is connected.
    shared: Arc<Shared>,
}

/// The tasks behind `Peers`: dropped, they stop.
pub struct PeerTasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for PeerTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Peers {
    /// Starts publishing `gateway`'s invalidations to `url` and applying the others'. Does not
    /// wait for Redis: until it answers, the replica behaves as while it is lost.
    /// `namespace` (`shared_cache::namespace`) keeps this deployment's cache tier apart.
    pub fn start(
        gateway: &Arc<Gateway>,
        url: &str,
        namespace: &str,
    ) -> redis::RedisResult<(Arc<Peers>, PeerTasks)> {
        let client = redis::Client::open(url)?;
        let publisher: Arc<OnceLock<ConnectionManager>> = Default::default();
        let shared = Arc::new(Shared::new(
            publisher.clone(),
            namespace,
            gateway.cache.ttl_secs(),
        ));
        let peers = Arc::new(Peers {
            publisher,
            missed: Default::default(),
            shared: shared.clone(),
        });
        let (sender, receiver) = mpsc::unbounded_channel();
        // The store's announcer is shared by every clone of it (the outbox's, the providers').
        if let Some(store) = &gateway.store {
            let _ = store.announcer.sender.set(sender.clone());
            store.announcer.shared.set(shared.clone());
        }
        let _ = gateway.announcer.sender.set(sender);
        gateway.announcer.shared.set(shared);
        let _ = gateway.peers.set(peers.clone());
        let publish = tokio::spawn(publish(
            client.clone(),
            peers.publisher.clone(),
            peers.missed.clone(),
            gateway.process_id.clone(),
            receiver,
        ));
        let subscribe = tokio::spawn(subscribe(client, Arc::downgrade(gateway), peers.clone()));
        Ok((peers, PeerTasks(vec![publish, subscribe])))
    }

    /// Whether Redis answers a PING within a second: cheap, for `/readyz`.
    pub async fn ping(&self) -> bool {
        let Some(manager) = self.publisher.get() else {
            return false;
        };
        let mut connection = manager.clone();
        matches!(
            tokio::time::timeout(
                PING_TIMEOUT,
                redis::cmd("PING").query_async::<String>(&mut connection)
            )
            .await,
            Ok(Ok(_))
        )
    }

    async fn publish_all(&self, from: &str) -> bool {
        let Some(manager) = self.publisher.get() else {
            return false;
        };
        send(&mut manager.clone(), from, Change::All).await
    }
}

/// Publishes `change`, trying twice: a connection Redis dropped fails once, then reconnects.
async fn send(connection: &mut ConnectionManager, from: &str, change: Change) -> bool {
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if send_once(connection, from, change.clone()).await {
            return true;
        }
    }
    false
}

async fn send_once(connection: &mut ConnectionManager, from: &str, change: Change) -> bool {
    let message = Message {
        from: from.to_string(),
        change,
    };
    let Ok(payload) = serde_json::to_string(&message) else {
        return false;
    };
    let mut command = redis::cmd("PUBLISH");
    command.arg(CHANNEL).arg(payload);
    let published = command.query_async::<i64>(connection);
    matches!(
        tokio::time::timeout(PING_TIMEOUT, published).await,
        Ok(Ok(_))
    )
}

/// Publishes each local invalidation, in order, over a connection that reconnects by itself.
async fn publish(
    client: redis::Client,
    slot: Arc<OnceLock<ConnectionManager>>,
    missed: Arc<AtomicBool>,
    from: String,
    mut changes: mpsc::UnboundedReceiver<Change>,
) {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(PING_TIMEOUT)
        .set_response_timeout(PING_TIMEOUT)
        .set_number_of_retries(1)
        .set_max_delay(500);
    let mut connection = loop {
        match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
            Ok(connection) => break connection,
            Err(_) => {
                // Announcements made before Redis first answered are dropped: the `all` the
                // subscriber sends once it connects covers them.
                while changes.try_recv().is_ok() {
                    missed.store(true, Ordering::Release);
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    };
    let _ = slot.set(connection.clone());
    while let Some(change) = changes.recv().await {
        // A failure is covered by an `all` (sent by the subscriber).
        if !send(&mut connection, &from, change).await {
            missed.store(true, Ordering::Release);
        }
    }
}

/// Applies the other replicas' invalidations; bounds staleness while Redis is lost.
async fn subscribe(client: redis::Client, gateway: Weak<Gateway>, peers: Arc<Peers>) {
    let mut lost_since: Option<tokio::time::Instant> = None;
    let mut warned = false;
    loop {
        let Some(me) = gateway.upgrade().map(|g| g.process_id.clone()) else {
            return;
        };
        let connected = async {
            let pubsub = tokio::time::timeout(PING_TIMEOUT, client.get_async_pubsub())
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| e.to_string())?;
            let (mut sink, stream) = pubsub.split();
            tokio::time::timeout(PING_TIMEOUT, sink.subscribe(CHANNEL))
                .await
                .map_err(|_| "subscribe timed out".to_string())?
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((sink, stream))
        }
        .await;
        let (mut sink, mut stream) = match connected {
            Ok(connected) => connected,
            Err(error) => {
                peers.shared.lost();
                if !warned {
                    tracing::warn!(
                        %error,
                        "Redis unreachable: other replicas' writes are not heard; everything \
                         cached is retired every {}s until it is back",
                        STALE_WHILE_LOST.as_secs()
                    );
                    warned = true;
                }
                let since = *lost_since.get_or_insert_with(tokio::time::Instant::now);
                let Some(g) = gateway.upgrade() else { return };
                if since.elapsed() >= STALE_WHILE_LOST {
                    g.retire_all_cached();
                    lost_since = Some(tokio::time::Instant::now());
                }
                drop(g);
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
        };
        // Subscribed: from here on nothing is missed. What was cached before may be stale
        // (nothing was heard before the subscription, or while it was lost): retire it, and
        // after a loss tell the others, whose announcements to us or ours to them may have
        // been lost.
        if let Some(g) = gateway.upgrade() {
            g.retire_all_cached();
        }
        // The cache tier is trusted from here (after its epoch moved, if anything was missed);
        // tried again each tick until Redis answers.
        peers.shared.recover().await;
        let mut told = true;
        if warned {
            tracing::info!("Redis reachable again: cache retired, invalidations shared again");
            // The publisher may reconnect a moment later: tried again each tick until it takes.
            told = peers.publish_all(&me).await;
        }
        let mut ticks = tokio::time::interval(PING_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let error = loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break "connection closed".to_string() };
                    let Ok(payload) = message.get_payload::<String>() else { continue };
                    let Ok(message) = serde_json::from_str::<Message>(&payload) else { continue };
                    if message.from == me {
                        continue;
                    }
                    let Some(g) = gateway.upgrade() else { return };
                    g.apply_peer_change(&message.change).await;
                }
                _ = ticks.tick() => {
                    if peers.missed.swap(false, Ordering::AcqRel) {
                        told = false;
                    }
                    if !told {
                        told = peers.publish_all(&me).await;
                    }
                    peers.shared.recover().await;
                    match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => break e.to_string(),
                        Err(_) => break "ping timed out".to_string(),
                    }
                }
            }
        };
        tracing::warn!(
            %error,
            "lost Redis: other replicas' writes are not heard; everything cached is retired \
             every {}s until it is back",
            STALE_WHILE_LOST.as_secs()
        );
        warned = true;
        peers.shared.lost();
        lost_since = Some(tokio::time::Instant::now());
        if let Some(g) = gateway.upgrade() {
            g.retire_all_cached();
        }
    }
}

impl Change {
    pub fn contact(id: &GlobalId) -> Change {
        Change::Contact(id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_json() {
        for change in [
            Change::Contact("consuelo:c1".into()),
            Change::Provider(ProviderId::Maiagent),
            Change::Registry,
            Change::All,
        ] {
            let text = serde_json::to_string(&Message {
                from: "p".into(),
                change: change.clone(),
            })
            .unwrap();
            assert_eq!(
                serde_json::from_str::<Message>(&text).unwrap().change,
                change
            );
        }
    }
}
