//! The shared cache tier in Redis (`[cache] redis_url`): behind the read cache (moka, then
//! Redis, then the provider), it holds contact records, whole answers (the response cache's)
//! and persisted queries, for every replica.
//!
//! **Shared versions.** Redis keeps counters mirroring the read cache's local stamps, under
//! `contact-gateway:{namespace}:` (`namespace`: the deployment's providers): `v:record:{stripe}`
//! per record stripe (the read cache's stripe function: fixed keys, equal in every process),
//! `v:list:{provider}` per provider's list windows, `v:registry` for the do-not-contact
//! registry, and an epoch, `v:epoch`. They never expire (with `maxmemory`, only a `volatile-*`
//! policy keeps them). A write INCRs the versions of what it touched (one pipeline),
//! **after its provider answered (or its change was committed) and before its local stamp is
//! taken**, so before it is acknowledged and before any replica applies it. What is kept in
//! Redis carries the versions (and epoch) read **before** the data was: a contact the version
//! of its stripe read before the provider was asked; an answer those of every entry it read.
//! It is served only while every one of them is still current. As for the local stamps: an
//! entry kept under version `v` holds an answer to a request sent after every write whose
//! INCR reached `v` had been answered, and a read that starts after a write was acknowledged
//! sees a version at least that write's, so it finds only data read after the write.
//!
//! **When an INCR fails** (Redis down or slow), the write goes on (strict locally, as
//! without Redis), and this replica stops trusting Redis: nothing is read from or written to
//! it until the epoch has been INCRed, which retires everything kept before. The epoch is also
//! INCRed by every replica that reconnects after losing Redis: a write made through another
//! replica during the outage may not have reached its versions. So an entry written before an
//! outage is never served after it. A Redis that restarts empty gets a random epoch (`SET NX`),
//! so an entry kept under a previous life's counters never matches the new ones. Left open: a
//! replica whose bump failed while Redis still answers the others (a partition) cannot stop
//! them reading what it outdated until it reaches Redis again and moves the epoch; their
//! entries expire within `ttl_secs` meanwhile, as without Redis.
//!
//! The answers' check reads, in one script, the version keys an answer names: a standalone
//! Redis (or a primary), not Redis Cluster.
//!
//! **Redis unreachable.** Every call has a short timeout, and none is made while the
//! subscriber (`gateway::peers`) says Redis is lost: requests go to moka and the providers as
//! without Redis; `contact_gateway_cache_requests_total{tier="redis"}` stops moving.
//!
//! What goes to Redis is what the read cache holds: contacts as mapped, whose `raw` is the
//! provider's answer with the key already redacted (`providers::http`). Keys name no secret.

use crate::contact::ProviderId;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one call to Redis may take before it counts as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// After a call failed, Redis is left alone this long (requests do not each wait for it while
/// the subscriber has not noticed a loss yet).
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A shared version: what a write bumps and a kept entry is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// A stripe of contact records (`ReadCache`'s stripe function).
    Record(usize),
    /// A provider's list windows.
    List(ProviderId),
    /// The do-not-contact registry.
    Registry,
    /// Everything kept: moved when a write's bump may have been lost.
    Epoch,
}

/// The namespace of a deployment's keys: replicas of one deployment read the same providers
/// (base URL, settings, region), and a Redis shared by two deployments (or two test runs)
/// keeps them apart. Names no secret: a hash, of no key.
pub fn namespace(config: &crate::config::Config) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        // Length-prefixed: no two configurations hash the same bytes.
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    part(config.default_region.as_bytes());
    for (id, provider) in &config.providers {
        part(id.as_str().as_bytes());
        part(provider.base_url.as_bytes());
        part(provider.default_region.as_bytes());
        for (name, value) in &provider.settings {
            part(name.as_bytes());
            part(value.as_bytes());
        }
    }
    let digest = format!("{:x}", hash.finalize());
    digest[..12].to_string()
}

/// The shared version (and epoch) something was read under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedStamp {
    pub version: u64,
    pub epoch: u64,
}

/// A contact as kept in Redis: the versions it was read under, and when it was fetched
/// (unix ms: what it may not outlive).
#[derive(Serialize, Deserialize)]
struct KeptContact<C> {
    v: u64,
    e: u64,
    at: u64,
    c: C,
}

/// What a lookup of a contact found.
pub enum ContactLookup {
    /// Kept and current: the contact, its stamp and how long ago it was fetched.
    Hit(Arc<crate::contact::Contact>, SharedStamp, Duration),
    /// Not kept (or no longer current): load it under this stamp (read before the load).
    Miss(SharedStamp),
}

/// Sets `KEYS[1]` to `ARGV[1]` for `ARGV[4]` seconds, only while the version `KEYS[2]` is
/// still `ARGV[2]` and the epoch `KEYS[3]` still `ARGV[3]`: a load that a write overtook is
/// not kept (it would never be served, only take the room).
const SET_IF_CURRENT: &str = r"
if (redis.call('GET', KEYS[2]) or '0') == ARGV[2] and redis.call('GET', KEYS[3]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
  return 1
end
return 0
";

/// A kept answer (`KEYS[1]`), only while every version its first line names is current; and
/// the registry's version (`KEYS[2]`) and the epoch (`KEYS[3]`) now, read in the same step.
const ANSWER_IF_CURRENT: &str = r"
local registry = redis.call('GET', KEYS[2]) or '0'
local epoch = redis.call('GET', KEYS[3])
local kept = redis.call('GET', KEYS[1])
if not kept then return {false, registry, epoch} end
local newline = string.find(kept, '\n', 1, true)
if not newline then return {false, registry, epoch} end
local head = cjson.decode(string.sub(kept, 1, newline - 1))
for _, pair in ipairs(head.v) do
  if (redis.call('GET', pair[1]) or '0') ~= pair[2] then return {false, registry, epoch} end
end
return {kept, registry, epoch}
";

/// One replica's view of the shared tier: the connection (`gateway::peers`' publisher's) and
/// whether Redis may be trusted now.
pub struct Shared {
    connection: Arc<OnceLock<ConnectionManager>>,
    /// `contact-gateway:{namespace}:`, before every key but persisted queries'.
    prefix: String,
    /// The subscriber is connected: nothing another replica announces is missed.
    connected: AtomicBool,
    /// Counts what makes Redis untrusted until the epoch moves: a loss, a failed INCR.
    dirty: AtomicU64,
    /// The `dirty` count the last epoch INCR covered. Trusted while equal to `dirty`.
    clean: AtomicU64,
    /// `[cache] ttl_secs`: how long a kept contact lives in Redis.
    ttl_secs: u64,
    /// Since `created`, in ms: no call before then (a call failed).
    paused_until: AtomicU64,
    created: Instant,
    set_if_current: redis::Script,
    answer_if_current: redis::Script,
}

/// The shared tier as the read cache, the store and the server find it: set once Redis is
/// configured (`Peers::start`), and usable only while Redis is trusted.
#[derive(Clone, Default)]
pub struct SharedTier(Arc<OnceLock<Arc<Shared>>>);

impl SharedTier {
    /// The tier, when it is configured (trusted or not).
    pub fn configured(&self) -> Option<&Shared> {
        self.0.get().map(|s| s.as_ref())
    }

    /// The tier, when it may be read from and written to now.
    pub fn usable(&self) -> Option<&Shared> {
        self.configured().filter(|s| s.trusted())
    }

    pub fn set(&self, shared: Arc<Shared>) {
        let _ = self.0.set(shared);
    }
}

impl Shared {
    pub fn new(
        connection: Arc<OnceLock<ConnectionManager>>,
        namespace: &str,
        ttl_secs: u64,
    ) -> Shared {
        Shared {
            connection,
            prefix: format!("contact-gateway:{namespace}:"),
            connected: AtomicBool::new(false),
            dirty: AtomicU64::new(0),
            clean: AtomicU64::new(0),
            ttl_secs,
            paused_until: AtomicU64::new(0),
            created: Instant::now(),
            set_if_current: redis::Script::new(SET_IF_CURRENT),
            answer_if_current: redis::Script::new(ANSWER_IF_CURRENT),
        }
    }

    /// A tier on the Redis at `TEST_REDIS_URL`, trusted, under a namespace of its own; `None`
    /// when the variable is not set (the test is then skipped).
    #[cfg(test)]
    pub async fn for_test() -> Option<Arc<Shared>> {
        let url = std::env::var("TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let Some(url) = url else {
            eprintln!("skipping Redis: TEST_REDIS_URL is not set (.ci/run sets it)");
            return None;
        };
        let client = redis::Client::open(url).expect("a Redis URL");
        let manager = ConnectionManager::new(client).await.expect("Redis answers");
        let slot = Arc::new(OnceLock::new());
        let _ = slot.set(manager);
        let namespace = format!("test-{}", random_epoch());
        let shared = Arc::new(Shared::new(slot, &namespace, 60));
        assert!(shared.recover().await, "Redis answers");
        Some(shared)
    }

    /// The key of a shared version: `…:v:record:{stripe}`, `…:v:list:{provider}`,
    /// `…:v:registry`, `…:v:epoch`.
    pub fn key(&self, version: Version) -> String {
        let prefix = &self.prefix;
        match version {
            Version::Record(stripe) => format!("{prefix}v:record:{stripe}"),
            Version::List(provider) => format!("{prefix}v:list:{}", provider.as_str()),
            Version::Registry => format!("{prefix}v:registry"),
            Version::Epoch => format!("{prefix}v:epoch"),
        }
    }

    /// Where a contact is kept.
    fn contact_key(&self, id: &str) -> String {
        format!("{}contact:{id}", self.prefix)
    }

    /// Where an answer is kept, by the hash of its response-cache key.
    pub fn response_key(&self, hash: &str) -> String {
        format!("{}response:{hash}", self.prefix)
    }

    /// Whether Redis may be trusted: connected, and no loss or failed INCR since the epoch
    /// last moved.
    pub fn trusted(&self) -> bool {
        self.in_step() && self.since_created() >= self.paused_until.load(Ordering::Acquire)
    }

    /// Connected, and no loss or failed bump since the epoch last moved (a pause after a
    /// failed call aside: a write's bump is still tried then).
    fn in_step(&self) -> bool {
        self.connected.load(Ordering::Acquire)
            && self.clean.load(Ordering::Acquire) == self.dirty.load(Ordering::Acquire)
    }

    fn since_created(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `call`'s answer within `CALL_TIMEOUT`; `None`, and Redis left alone for
    /// `PAUSE_AFTER_FAILURE`, when it fails or takes longer.
    async fn within<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(answer)) => Some(answer),
            _ => {
                let until = self.since_created()
                    + u64::try_from(PAUSE_AFTER_FAILURE.as_millis()).unwrap_or(u64::MAX);
                self.paused_until.fetch_max(until, Ordering::AcqRel);
                None
            }
        }
    }

    fn connection(&self) -> Option<ConnectionManager> {
        self.connection.get().cloned()
    }

    /// Redis is not to be trusted until the epoch moves.
    fn taint(&self) {
        self.dirty.fetch_add(1, Ordering::AcqRel);
    }

    /// The subscriber lost Redis: nothing is read from it, and the epoch moves on reconnect.
    pub fn lost(&self) {
        self.taint();
        self.connected.store(false, Ordering::Release);
    }

    /// The subscriber is (still) connected: makes sure the epoch exists, moves it if anything
    /// happened since it last did, then trusts Redis. Called on (re)connect and every tick;
    /// `false` when Redis did not answer (tried again next tick).
    pub async fn recover(&self) -> bool {
        let dirty = self.dirty.load(Ordering::Acquire);
        let Some(mut connection) = self.connection() else {
            return false;
        };
        let clean = self.clean.load(Ordering::Acquire);
        if dirty == clean && self.connected.load(Ordering::Acquire) {
            return true;
        }
        let mut pipe = redis::pipe();
        // A random start, so that a Redis that restarted empty never gives an old epoch again.
        let epoch = self.key(Version::Epoch);
        pipe.cmd("SET")
            .arg(&epoch)
            .arg(random_epoch())
            .arg("NX")
            .ignore();
        if dirty != clean {
            pipe.cmd("INCR").arg(&epoch).ignore();
        }
        let done = tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<()>(&mut connection));
        if !matches!(done.await, Ok(Ok(()))) {
            return false;
        }
        self.clean.fetch_max(dirty, Ordering::AcqRel);
        self.connected.store(true, Ordering::Release);
        if dirty != clean {
            tracing::info!("Redis cache tier trusted again: its epoch moved past what was kept");
        }
        true
    }

    /// A write's invalidation of `keys` (versions), once its provider answered and before its
    /// local stamp is taken. Not waited for while Redis is lost: Redis is then untrusted until
    /// the epoch moves.
    pub async fn bump(&self, versions: &[Version]) {
        let connection = self.connection().filter(|_| self.in_step());
        let Some(mut connection) = connection else {
            self.taint();
            return;
        };
        let mut pipe = redis::pipe();
        for &version in versions {
            pipe.cmd("INCR").arg(self.key(version)).ignore();
        }
        let done = tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<()>(&mut connection));
        if !matches!(done.await, Ok(Ok(()))) {
            self.taint();
            tracing::warn!(
                "a write's invalidation did not reach Redis: its cache tier is not read until \
                 its epoch moves"
            );
        }
    }

    /// The kept contact `id` if it is current under its stripe's version, else the stamp to
    /// load it under. `None`: Redis did not answer (or has no epoch yet).
    pub async fn contact(&self, id: &str, stripe: usize) -> Option<ContactLookup> {
        let mut connection = self.connection()?;
        let mut cmd = redis::cmd("MGET");
        cmd.arg(self.contact_key(id))
            .arg(self.key(Version::Record(stripe)))
            .arg(self.key(Version::Epoch));
        let (kept, version, epoch) = self
            .within(cmd.query_async::<(Option<Vec<u8>>, Option<u64>, Option<u64>)>(&mut connection))
            .await?;
        let stamp = SharedStamp {
            version: version.unwrap_or(0),
            epoch: epoch?,
        };
        let found = kept
            .and_then(|bytes| {
                serde_json::from_slice::<KeptContact<crate::contact::Contact>>(&bytes).ok()
            })
            .filter(|kept| kept.v == stamp.version && kept.e == stamp.epoch);
        Some(match found {
            Some(kept) => {
                let age = Duration::from_millis(now_ms().saturating_sub(kept.at));
                ContactLookup::Hit(Arc::new(kept.c), stamp, age)
            }
            None => ContactLookup::Miss(stamp),
        })
    }

    /// Keeps `contact` (loaded after `stamp` was read) while its stripe's version and the
    /// epoch are still `stamp`'s.
    pub async fn put_contact(
        &self,
        stripe: usize,
        stamp: SharedStamp,
        contact: &crate::contact::Contact,
    ) {
        let Some(mut connection) = self.connection() else {
            return;
        };
        let kept = KeptContact {
            v: stamp.version,
            e: stamp.epoch,
            at: now_ms(),
            c: contact,
        };
        let Ok(value) = serde_json::to_vec(&kept) else {
            return;
        };
        let mut invocation = self
            .set_if_current
            .key(self.contact_key(&contact.global_id().to_string()));
        invocation
            .key(self.key(Version::Record(stripe)))
            .key(self.key(Version::Epoch))
            .arg(value)
            .arg(stamp.version)
            .arg(stamp.epoch)
            .arg(self.ttl_secs.max(1));
        self.within(invocation.invoke_async::<i64>(&mut connection))
            .await;
    }

    /// The current value of `version`, under the epoch now (one round trip); `None` when
    /// Redis does not answer or has no epoch.
    pub async fn version(&self, version: Version) -> Option<SharedStamp> {
        let mut connection = self.connection()?;
        let mut cmd = redis::cmd("MGET");
        cmd.arg(self.key(version)).arg(self.key(Version::Epoch));
        let (version, epoch) = self
            .within(cmd.query_async::<(Option<u64>, Option<u64>)>(&mut connection))
            .await?;
        Some(SharedStamp {
            version: version.unwrap_or(0),
            epoch: epoch?,
        })
    }

    /// A kept answer under `key` if every version it names is current, with the registry's
    /// version and the epoch now (read before any data of a request that runs next). `None`
    /// when Redis does not answer.
    pub async fn answer(&self, key: &str) -> Option<(Option<Vec<u8>>, u64, Option<u64>)> {
        let mut connection = self.connection()?;
        let mut invocation = self.answer_if_current.key(key);
        invocation
            .key(self.key(Version::Registry))
            .key(self.key(Version::Epoch));
        self.within(invocation.invoke_async::<(Option<Vec<u8>>, u64, Option<u64>)>(&mut connection))
            .await
    }

    /// Keeps `value` under `key` for `ttl` (an answer, or a persisted query).
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) {
        let Some(mut connection) = self.connection() else {
            return;
        };
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("EX").arg(ttl.as_secs().max(1));
        self.within(cmd.query_async::<()>(&mut connection)).await;
    }

    /// What is kept under `key`; `None` when nothing is or Redis does not answer.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut connection = self.connection()?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.within(cmd.query_async::<Option<Vec<u8>>>(&mut connection))
            .await
            .flatten()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A start for the epoch: random, far from overflowing when INCRed.
fn random_epoch() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap_or_default();
    (u64::from_le_bytes(bytes) >> 16).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a connection: untrusted, and a write's bump leaves it so until the epoch moves.
    #[tokio::test]
    async fn redis_is_untrusted_until_the_epoch_moved_past_a_failed_bump() {
        let shared = Shared::new(Default::default(), "ns", 60);
        assert!(!shared.trusted(), "not connected yet");
        shared.bump(&[Version::Registry]).await;
        assert_ne!(
            shared.dirty.load(Ordering::Acquire),
            shared.clean.load(Ordering::Acquire),
            "the epoch must move before Redis is read"
        );
        assert!(!shared.recover().await, "no connection to move it with");
        assert!(!shared.trusted());
        let tier = SharedTier::default();
        tier.set(Arc::new(shared));
        assert!(tier.configured().is_some());
        assert!(tier.usable().is_none());
    }

    /// A failed call leaves Redis alone for a while (no request waits on it), without making
    /// the epoch move: a read that failed lost no invalidation.
    #[tokio::test]
    async fn a_failed_call_pauses_the_tier_without_untrusting_it() {
        let shared = Shared::new(Default::default(), "ns", 60);
        shared.connected.store(true, Ordering::Release);
        assert!(shared.trusted());
        let failed = shared
            .within(async { Err::<(), _>(redis::RedisError::from(std::io::Error::other("down"))) })
            .await;
        assert!(failed.is_none());
        assert!(!shared.trusted(), "paused");
        assert!(shared.in_step(), "a write's bump is still tried");
        shared.paused_until.store(0, Ordering::Release);
        assert!(shared.trusted(), "the pause over");
    }

    #[test]
    fn keys_are_namespaced() {
        let shared = Shared::new(Default::default(), "abc", 60);
        assert_eq!(
            shared.key(Version::Record(12)),
            "contact-gateway:abc:v:record:12"
        );
        assert_eq!(
            shared.key(Version::List(ProviderId::Maiagent)),
            "contact-gateway:abc:v:list:maiagent"
        );
        assert_eq!(shared.key(Version::Epoch), "contact-gateway:abc:v:epoch");
        assert_eq!(
            shared.response_key("f00"),
            "contact-gateway:abc:response:f00"
        );
        let mut config = crate::config::Config::parse("", |_| None).unwrap();
        let before = namespace(&config);
        config.default_region = "FR".into();
        assert_ne!(namespace(&config), before);
        assert_eq!(namespace(&config).len(), 12);
    }
}
