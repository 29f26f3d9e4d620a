//! The response cache: whole answers to queries, kept as the bytes sent, and served before
//! async-graphql parses, validates or executes anything.
//!
//! **Keys.** An answer is kept under the caller (`[auth]`'s key name or JWT `sub@iss` and its
//! role; one scope without `[auth]`), the media type it was answered in, the normalized
//! document (its tokens, without whitespace, commas or comments), `operationName` and the
//! variables as canonical JSON (keys sorted). In front of that sits an index by the exact
//! request (the POST body, or the GET query string, with its `Accept` and `Content-Type`
//! headers and the caller), so a repeated request is answered from a hash of its bytes; a
//! request written differently (or a persisted query's hash once resolved) finds the
//! normalized entry after its document is parsed, and is indexed in turn.
//!
//! **Validity.** While a query runs, the read cache and the do-not-contact registry's readers
//! note what it read (`gateway::cache::Reads`): the write stamp of each contact record's
//! stripe and of each provider's list windows it looked under, read before the data as the
//! read cache does, the registry's version, and when the oldest cached entry it used was
//! stored. An answer is served only while every one of those stamps is still current, so each
//! invalidation the writes already make (`ReadCache::invalidate*`, `Store::registry_changed`)
//! retires exactly the answers built on what it touched; and never past `[cache] ttl_secs`
//! after its oldest data was fetched. `providers`, `normalizePhone`, `_service` and
//! introspection depend on the configuration only, which is fixed for the process's life.
//!
//! **Not kept**: mutations and subscriptions, batches, answers with errors, answers built from
//! a read that had to be fresh (`noCache: true`, as a literal or through a variable) or that
//! the read cache does not keep (a contact that is not there), operations selecting a root
//! field not in `CACHEABLE_ROOT_FIELDS`, and everything when `[cache] ttl_secs = 0` or
//! `max_response_bytes = 0`. Memory is bounded by `[cache] max_response_bytes`.
//!
//! **Other replicas.** Stamps are this process's. With `[cache] redis_url`, `gateway::peers`
//! applies the other replicas' invalidations through the same calls (`ReadCache::apply`,
//! `Store::registry_changed_elsewhere`), so the answers built on what they touched retire by
//! themselves; without it, a change made through another replica is seen here only when its
//! entries expire (`ttl_secs`).
//!
//! **The shared tier.** With `redis_url`, an answer missing here is looked up in Redis
//! (`ResponseCache::shared_hit`: key `contact-gateway:{namespace}:response:{sha256 of the
//! normalized key}`), checked in the same round trip against the shared versions it names
//! (`gateway::shared_cache`), and kept here when found (under `ReadSet::at_most`). That
//! lookup also reads the registry's shared version and the epoch before the query runs;
//! an answer whose every read carried a shared version under that epoch is kept in Redis too,
//! for the rest of its lifetime, beside the versions it stands on: the contacts' stripes and
//! the lists' versions as their entries were read, the registry's as read before the query.

use super::auth::Caller;
use super::graphql_http::{Answer, MediaType};
use crate::config::CacheConfig;
use crate::gateway::cache::{ReadSet, SharedStart, SharedVersions};
use crate::gateway::Gateway;
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Says whether an answer came from the response cache: `hit` or `miss`.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("contact-gateway-cache");
const HIT: HeaderValue = HeaderValue::from_static("hit");
const MISS: HeaderValue = HeaderValue::from_static("miss");

/// The root fields whose reads are noted (or that read nothing that changes while the process
/// runs). A new root field is cached once it is added here, after its reads are noted.
/// `doNotContactEntries` is not: its propagations move as any replica's outbox sends them, and
/// it is polled to watch them (an operator's view, not a hot path).
const CACHEABLE_ROOT_FIELDS: &[&str] = &[
    "contact",
    "contacts",
    "providers",
    "normalizePhone",
    "isDoNotContact",
    "_entities",
    "_service",
    "__typename",
    "__schema",
    "__type",
];

/// Requests longer than this are not indexed by their exact bytes.
const MAX_EXACT_BYTES: usize = 32 * 1024;

/// Who asks: answers are never shared between callers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Scope(Option<(String, bool)>);

impl Scope {
    fn of(caller: Option<&Caller>) -> Scope {
        Scope(caller.map(|c| (c.name.clone(), c.may_write)))
    }
}

/// A request exactly as it arrived (what changes its answer).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExactKey {
    scope: Scope,
    accept: Option<HeaderValue>,
    request: ExactRequest,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ExactRequest {
    Post {
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    Get {
        query: String,
    },
}

impl ExactKey {
    /// A POST's key; `None` when it is not indexed (a header sent twice, a large body).
    pub fn post(caller: Option<&Caller>, headers: &HeaderMap, body: &Bytes) -> Option<ExactKey> {
        if body.len() > MAX_EXACT_BYTES {
            return None;
        }
        Some(ExactKey {
            scope: Scope::of(caller),
            accept: single(headers, &header::ACCEPT)?,
            request: ExactRequest::Post {
                content_type: single(headers, &header::CONTENT_TYPE)?,
                body: body.clone(),
            },
        })
    }

    /// A GET's key, from its raw query string.
    pub fn get(caller: Option<&Caller>, headers: &HeaderMap, query: &str) -> Option<ExactKey> {
        if query.len() > MAX_EXACT_BYTES {
            return None;
        }
        Some(ExactKey {
            scope: Scope::of(caller),
            accept: single(headers, &header::ACCEPT)?,
            request: ExactRequest::Get {
                query: query.to_string(),
            },
        })
    }

    fn weight(&self) -> usize {
        let request = match &self.request {
            ExactRequest::Post { body, .. } => body.len(),
            ExactRequest::Get { query } => query.len(),
        };
        request + self.accept.as_ref().map_or(0, |a| a.len())
    }
}

/// The header's one value (`Some(None)`: absent); `None` when it is sent more than once.
fn single(headers: &HeaderMap, name: &HeaderName) -> Option<Option<HeaderValue>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().cloned();
    values.next().is_none().then_some(first)
}

/// A query as the cache compares it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NormalizedKey {
    scope: Scope,
    media: MediaType,
    document: Arc<str>,
    operation_name: Option<String>,
    /// Canonical JSON.
    variables: String,
}

impl NormalizedKey {
    /// Where the shared tier keeps its answer: the SHA-256 of every part of the key.
    fn shared_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        let scope = match &self.scope.0 {
            Some((name, may_write)) => format!("{}:{name}", u8::from(*may_write)),
            None => String::new(),
        };
        for part in [
            scope.as_str(),
            self.media.header().to_str().unwrap_or(""),
            &self.document,
            self.operation_name.as_deref().unwrap_or(""),
            &self.variables,
        ] {
            // Length-prefixed: no two keys hash the same bytes.
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        format!("{:x}", hash.finalize())
    }

    fn weight(&self) -> usize {
        self.document.len()
            + self.variables.len()
            + self.operation_name.as_ref().map_or(0, String::len)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Exact(ExactKey),
    Normalized(NormalizedKey),
}

/// A kept answer and what it was built from.
pub struct Stored {
    status: StatusCode,
    content_type: HeaderValue,
    /// Headers the schema set (`http_headers`).
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    reads: ReadSet,
    /// When its oldest data expires from the read cache.
    expires_at: Instant,
}

impl Stored {
    fn respond(&self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.content_type.clone());
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        headers.insert(CACHE_STATUS, HIT);
        response
    }

    fn weight(&self) -> usize {
        // The read set and the struct itself, roughly.
        self.body.len() + self.reads.records_len() * 16 + 256
    }
}

/// An answer as the shared tier keeps it: this, as JSON on one line, then the body. The
/// check's script reads `v` (`SharedVersions`).
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedHead {
    #[serde(flatten)]
    versions: SharedVersions,
    status: u16,
    content_type: String,
    headers: Vec<(String, String)>,
    /// When its oldest data was fetched, unix ms.
    oldest_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Stored {
    /// Its shared form, when its headers are text.
    fn shared_value(&self, versions: SharedVersions) -> Option<Vec<u8>> {
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect::<Option<Vec<_>>>()?;
        let age = self.reads.oldest.map_or(Duration::ZERO, |o| o.elapsed());
        let head = SharedHead {
            versions,
            status: self.status.as_u16(),
            content_type: self.content_type.to_str().ok()?.to_string(),
            headers,
            oldest_ms: now_ms().saturating_sub(u64::try_from(age.as_millis()).ok()?),
        };
        let mut value = serde_json::to_vec(&head).ok()?;
        value.push(b'\n');
        value.extend_from_slice(&self.body);
        Some(value)
    }

    /// An answer from the shared tier, kept here under `reads`'s stamps (`ReadSet::at_most`).
    fn from_shared(value: &[u8], clock: u64, registry: u64, ttl: Duration) -> Option<Stored> {
        let newline = value.iter().position(|&b| b == b'\n')?;
        let head: SharedHead = serde_json::from_slice(&value[..newline]).ok()?;
        let age = Duration::from_millis(now_ms().saturating_sub(head.oldest_ms));
        let now = Instant::now();
        let oldest = now.checked_sub(age).unwrap_or(now);
        let headers = head
            .headers
            .iter()
            .map(|(name, value)| {
                Some((
                    HeaderName::try_from(name.as_str()).ok()?,
                    HeaderValue::try_from(value.as_str()).ok()?,
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Stored {
            status: StatusCode::from_u16(head.status).ok()?,
            content_type: HeaderValue::try_from(head.content_type).ok()?,
            headers,
            body: Bytes::copy_from_slice(&value[newline + 1..]),
            reads: ReadSet::at_most(clock, &head.versions, registry, oldest)?,
            expires_at: oldest + ttl,
        })
    }
}

/// Marks an answer that was not served from the cache.
pub fn mark_miss(response: &mut Response) {
    crate::metrics::cache_request("response", false);
    response.headers_mut().insert(CACHE_STATUS, MISS);
}

/// Whole answers by request (see the module's doc).
#[derive(Clone)]
pub struct ResponseCache {
    entries: moka::sync::Cache<Key, Arc<Stored>>,
    gateway: Arc<Gateway>,
    ttl: Duration,
}

impl ResponseCache {
    /// The cache for `config`; `None` when it is off (`ttl_secs` or `max_response_bytes` 0).
    pub fn new(config: &CacheConfig, gateway: Arc<Gateway>) -> Option<ResponseCache> {
        if config.ttl_secs == 0 || config.max_response_bytes == 0 {
            return None;
        }
        let ttl = Duration::from_secs(config.ttl_secs);
        let entries = moka::sync::Cache::builder()
            .max_capacity(config.max_response_bytes)
            .weigher(|key: &Key, stored: &Arc<Stored>| {
                let key = match key {
                    Key::Exact(k) => k.weight(),
                    Key::Normalized(k) => k.weight(),
                };
                u32::try_from(key + stored.weight()).unwrap_or(u32::MAX)
            })
            .time_to_live(ttl)
            .build();
        Some(ResponseCache {
            entries,
            gateway,
            ttl,
        })
    }

    /// The kept answer to exactly this request, if it still stands.
    pub fn exact_hit(&self, key: &ExactKey) -> Option<Response> {
        let stored = self.entries.get(&Key::Exact(key.clone()))?;
        let hit = self.stands(&stored).then(|| stored.respond());
        if hit.is_some() {
            crate::metrics::cache_request("response", true);
        }
        hit
    }

    /// The kept answer to this query, if it still stands; indexed under `exact` too.
    pub fn normalized_hit(&self, key: &NormalizedKey, exact: Option<ExactKey>) -> Option<Response> {
        let stored = self.entries.get(&Key::Normalized(key.clone()))?;
        if !self.stands(&stored) {
            return None;
        }
        if let Some(exact) = exact {
            self.entries.insert(Key::Exact(exact), stored.clone());
        }
        crate::metrics::cache_request("response", true);
        Some(stored.respond())
    }

    /// After a miss here: the shared tier's answer, if it holds a current one (kept here
    /// too, under `exact` as well); else what the request that runs next is to be kept in the
    /// shared tier under (`None`: the tier is not usable).
    pub async fn shared_hit(
        &self,
        key: &NormalizedKey,
        exact: Option<ExactKey>,
    ) -> Result<Response, Option<SharedStart>> {
        let Some(shared) = self.gateway.announcer.shared.usable() else {
            return Err(None);
        };
        // Both before the lookup (`ReadSet::at_most`).
        let clock = self.gateway.cache.clock_now();
        let registry = self
            .gateway
            .store
            .as_ref()
            .map_or(0, |store| store.registry_version());
        let redis_key = shared.response_key(&key.shared_key());
        let Some((kept, shared_registry, epoch)) = shared.answer(&redis_key).await else {
            return Err(None);
        };
        let start = epoch.map(|epoch| SharedStart {
            registry: shared_registry,
            epoch,
        });
        let found = kept
            .filter(|_| start.is_some())
            .and_then(|value| Stored::from_shared(&value, clock, registry, self.ttl))
            .map(Arc::new)
            .filter(|stored| self.stands(stored));
        crate::metrics::cache_request("redis", found.is_some());
        let Some(stored) = found else {
            return Err(start);
        };
        if let Some(exact) = exact {
            self.entries.insert(Key::Exact(exact), stored.clone());
        }
        self.entries
            .insert(Key::Normalized(key.clone()), stored.clone());
        crate::metrics::cache_request("response", true);
        Ok(stored.respond())
    }

    /// Keeps `answer`, built from `reads`, when it may be kept: a 200 with no error, from
    /// reads that may be cached and still stand. In the shared tier too when every read had a
    /// shared version under `start`'s epoch (Redis usable throughout).
    pub async fn keep(
        &self,
        key: NormalizedKey,
        exact: Option<ExactKey>,
        answer: &Answer,
        has_errors: bool,
        reads: ReadSet,
        start: Option<SharedStart>,
    ) {
        if has_errors || answer.status != StatusCode::OK || reads.not_to_keep {
            return;
        }
        let now = Instant::now();
        let stored = Arc::new(Stored {
            status: answer.status,
            content_type: answer.media.header(),
            headers: answer.headers.clone(),
            body: answer.body.clone(),
            expires_at: reads.oldest.unwrap_or(now).min(now) + self.ttl,
            reads,
        });
        // A write that came while it ran has retired it already: keep the room.
        if !self.stands(&stored) {
            return;
        }
        if let Some(exact) = exact {
            self.entries.insert(Key::Exact(exact), stored.clone());
        }
        self.entries
            .insert(Key::Normalized(key.clone()), stored.clone());
        let Some(shared) = self.gateway.announcer.shared.usable() else {
            return;
        };
        let Some(versions) = start.and_then(|start| stored.reads.shared_versions(start, shared))
        else {
            return;
        };
        let lifetime = stored.expires_at.saturating_duration_since(Instant::now());
        if let Some(value) = stored.shared_value(versions) {
            if !lifetime.is_zero() {
                let redis_key = shared.response_key(&key.shared_key());
                shared.put(&redis_key, &value, lifetime).await;
            }
        }
    }

    /// Whether nothing it was built from has changed or expired since.
    fn stands(&self, stored: &Stored) -> bool {
        Instant::now() < stored.expires_at
            && self.gateway.cache.still_current(&stored.reads)
            && stored.reads.registry.is_none_or(|version| {
                self.gateway
                    .store
                    .as_ref()
                    .is_some_and(|store| store.registry_version() == version)
            })
    }

    /// The key of a query that may be cached: one operation of type query selecting only
    /// `CACHEABLE_ROOT_FIELDS`, its document parsed and normalized (`normalized`).
    pub fn key_of(
        request: &mut async_graphql::Request,
        normalized: Arc<str>,
        caller: Option<&Caller>,
        media: MediaType,
    ) -> Option<NormalizedKey> {
        let operation_name = request.operation_name.clone();
        let variables = request.variables.clone().into_value().into_json().ok()?;
        let document = request.parsed_query().ok()?;
        let operations = document
            .operations
            .iter()
            .filter(|(name, _)| match (&operation_name, name) {
                (Some(wanted), Some(name)) => wanted.as_str() == name.as_str(),
                (Some(_), None) => false,
                (None, _) => true,
            })
            .map(|(_, op)| op)
            .collect::<Vec<_>>();
        let [operation] = operations.as_slice() else {
            return None; // none or ambiguous: the schema reports it
        };
        let selection = &operation.node.selection_set.node;
        if operation.node.ty != OperationType::Query
            || !only_cacheable_fields(document, selection, &mut HashSet::new())
        {
            return None;
        }
        let mut canonical = String::new();
        super::idempotency::write_canonical(&variables, &mut canonical);
        Some(NormalizedKey {
            scope: Scope::of(caller),
            media,
            document: normalized,
            operation_name,
            variables: canonical,
        })
    }
}

/// Whether every root field `selection` names (through fragments) is cacheable.
fn only_cacheable_fields<'a>(
    document: &'a ExecutableDocument,
    selection: &'a SelectionSet,
    seen: &mut HashSet<&'a str>,
) -> bool {
    selection.items.iter().all(|item| match &item.node {
        Selection::Field(field) => CACHEABLE_ROOT_FIELDS.contains(&field.node.name.node.as_str()),
        Selection::InlineFragment(fragment) => {
            only_cacheable_fields(document, &fragment.node.selection_set.node, seen)
        }
        Selection::FragmentSpread(spread) => {
            let name = spread.node.fragment_name.node.as_str();
            if !seen.insert(name) {
                return true; // already checked (or a cycle, which validation refuses)
            }
            document
                .fragments
                .get(&spread.node.fragment_name.node)
                .is_none_or(|f| only_cacheable_fields(document, &f.node.selection_set.node, seen))
        }
    })
}

/// The document's tokens, without the characters that do not change its meaning; `None`
/// when it cannot be read (it is then not cached).
pub fn normalize(query: &str) -> Option<Arc<str>> {
    graphql_parser::query::minify_query(query.to_string())
        .ok()
        .map(Arc::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_written_differently_normalize_alike() {
        let a = normalize("query Q($id: ID!) {\n  contact(id: $id) { id, displayName } # why\n}")
            .unwrap();
        let b = normalize("query Q($id:ID!){contact(id:$id){id displayName}}").unwrap();
        assert_eq!(a, b);
        // A string's insides are kept as written.
        let c = normalize(r#"{ contact(id: "a  b,c # d") { id } }"#).unwrap();
        assert!(c.contains(r#""a  b,c # d""#), "{c}");
        assert_ne!(normalize("{ a(x: 1) }"), normalize("{ a(x: 2) }"));
    }

    fn key_with(query: &str, variables: serde_json::Value) -> Option<NormalizedKey> {
        let mut request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables));
        ResponseCache::key_of(&mut request, normalize(query)?, None, MediaType::Json)
    }

    fn key(query: &str) -> Option<NormalizedKey> {
        key_with(query, serde_json::json!({}))
    }

    #[test]
    fn only_queries_of_known_root_fields_are_keyed() {
        assert!(key("{ contact(id: \"x:1\") { id } }").is_some());
        assert!(key("query { ...F } fragment F on Query { providers { id } }").is_some());
        assert!(key("mutation { deleteContact(id: \"x:1\") { deleted } }").is_none());
        assert!(key("{ someNewField }").is_none());
        assert!(key("query { ... on Query { someNewField } }").is_none());
        assert!(key("query { ...F } fragment F on Query { someNewField }").is_none());
        // Two operations and no operationName: the schema refuses it.
        assert!(key("query A { providers { id } } query B { providers { id } }").is_none());
    }

    /// An answer is served no longer than its oldest data would be by the read cache.
    #[test]
    fn an_answer_never_outlives_its_oldest_data() {
        let config = CacheConfig {
            ttl_secs: 1,
            ..CacheConfig::default()
        };
        let gateway = Arc::new(Gateway::new(Default::default(), &config));
        let cache = ResponseCache::new(&config, gateway).unwrap();
        let body = Bytes::from_static(br#"{"data":{}}"#);
        let exact = |n: u8| ExactKey::post(None, &HeaderMap::new(), &Bytes::from(vec![n])).unwrap();
        let answer = Answer {
            status: StatusCode::OK,
            media: MediaType::Json,
            headers: Vec::new(),
            body,
        };
        let keep = |n: u8, oldest: Option<Instant>| {
            let key = key_with(
                &format!("{{ providers {{ id }} }} # {n}"),
                serde_json::json!({}),
            );
            let mut reads = ReadSet::default();
            reads.oldest = oldest;
            futures::executor::block_on(cache.keep(
                key.unwrap(),
                Some(exact(n)),
                &answer,
                false,
                reads,
                None,
            ));
        };
        keep(1, None);
        keep(2, Instant::now().checked_sub(Duration::from_millis(900)));
        keep(3, Instant::now().checked_sub(Duration::from_secs(2)));
        assert!(
            cache.exact_hit(&exact(1)).is_some(),
            "fetched now: a second to live"
        );
        assert!(cache.exact_hit(&exact(2)).is_some());
        assert!(
            cache.exact_hit(&exact(3)).is_none(),
            "its data had expired already"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(cache.exact_hit(&exact(1)).is_some());
        assert!(
            cache.exact_hit(&exact(2)).is_none(),
            "expired with its oldest data"
        );
        // Errors and reads not to keep are not kept.
        let key = key_with("{ providers { id } } # 4", serde_json::json!({})).unwrap();
        futures::executor::block_on(cache.keep(
            key,
            Some(exact(4)),
            &answer,
            true,
            ReadSet::default(),
            None,
        ));
        assert!(cache.exact_hit(&exact(4)).is_none());
    }

    #[test]
    fn variables_are_compared_as_json() {
        let query = "query($a: Int, $b: Int) { providers { id } }";
        let a = key_with(query, serde_json::json!({"a": 1, "b": {"y": 2, "x": 3}}));
        let b = key_with(query, serde_json::json!({"b": {"x": 3, "y": 2}, "a": 1}));
        assert_eq!(a, b);
        assert_ne!(
            a,
            key_with(query, serde_json::json!({"a": 2, "b": {"x": 3, "y": 2}}))
        );
    }
}
