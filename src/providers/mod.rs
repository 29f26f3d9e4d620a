//! The provider seam: one trait every adapter implements, what each can do (as data), the
//! errors they return, and the registry that builds the enabled ones from config.

pub mod diagnostics;
pub mod http;
pub mod pacing;
pub mod request_budget;
#[cfg(test)]
mod testing;
pub mod wire;

pub mod consuelo;
pub mod magicblocks;
pub mod maiagent;
pub mod mainbrainer;
pub mod whautomate;

use crate::config::{Bucket, ProviderConfig};
use crate::contact::{Contact, MatchField, ProviderId};
use crate::fields::{Field, FieldAccess};
use crate::store::Store;
use crate::write::{ContactPatch, DoNotContact, NewContact, WriteFields};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// One unified operation, as `ProviderInfo.capabilities` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    List,
    Get,
    Search,
    Create,
    Update,
    Upsert,
    Delete,
    Tags,
    DoNotContact,
    Import,
}

/// What an adapter performs, natively or emulated by the gateway. Checked before any call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub list: bool,
    pub get: bool,
    /// Can narrow a listing by text, email or phone upstream.
    pub search: bool,
    /// Its own search finds contacts by an email (`ListQuery.email` narrows the listing
    /// upstream, so one call finds them, never a scan of the listing). `duplicatesOf` and
    /// `person` ask only providers that search the field; the others contribute none.
    pub search_email: bool,
    /// Likewise by a phone (`ListQuery.phone`, sent in the form the provider searches).
    pub search_phone: bool,
    pub create: bool,
    pub update: bool,
    /// Upserts natively (Mainbrainer); elsewhere the gateway emulates it by match.
    pub native_upsert: bool,
    pub delete: bool,
    pub tags: bool,
    pub do_not_contact: bool,
    /// The record has an email field (Whautomate's has none).
    pub holds_email: bool,
    /// The record has tags (only Whautomate's does).
    pub holds_tags: bool,
    /// The record has a company (MagicBlocks via `custom.company`, Consuelo, Mainbrainer).
    pub holds_company: bool,
    /// `list` and `get` are served from the gateway's ledger of what it wrote there
    /// (Mainbrainer, which documents no read endpoint), not by the provider: only contacts
    /// written through the gateway are there, with the fields as written.
    pub ledger: bool,
}

impl Capability {
    /// The operation, as `UNSUPPORTED_BY_PROVIDER` messages name it.
    pub fn operation(self) -> &'static str {
        match self {
            Capability::List => "listing contacts",
            Capability::Get => "get",
            Capability::Search => "search",
            Capability::Create => "create",
            Capability::Update => "update",
            Capability::Upsert => "upsert",
            Capability::Delete => "delete",
            Capability::Tags => "tags",
            Capability::DoNotContact => "do-not-contact",
            Capability::Import => "import",
        }
    }
}

impl Capabilities {
    pub fn has(&self, capability: Capability) -> bool {
        match capability {
            Capability::List => self.list,
            Capability::Get => self.get,
            Capability::Search => self.search,
            Capability::Create => self.create,
            Capability::Update => self.update,
            // Emulated by the gateway: find by email/phone, then update or create.
            Capability::Upsert => self.native_upsert || (self.list && self.create && self.update),
            Capability::Delete => self.delete,
            Capability::Tags => self.tags,
            Capability::DoNotContact => self.do_not_contact,
            // The gateway parses the CSV and creates row by row.
            Capability::Import => self.create,
        }
    }

    /// Those of `listed` served from the gateway's ledger, not by the provider.
    pub fn from_ledger(&self) -> Vec<Capability> {
        self.listed()
            .into_iter()
            .filter(|c| self.ledger && matches!(c, Capability::List | Capability::Get))
            .collect()
    }

    /// Whether its own search finds contacts by `field` (and it lists at all).
    pub fn searches(&self, field: MatchField) -> bool {
        self.list
            && match field {
                MatchField::Email => self.search_email && self.holds_email,
                MatchField::Phone => self.search_phone,
            }
    }

    /// The capabilities in `ProviderInfo` order.
    pub fn listed(&self) -> Vec<Capability> {
        use Capability::*;
        [
            List,
            Get,
            Search,
            Create,
            Update,
            Upsert,
            Delete,
            Tags,
            DoNotContact,
            Import,
        ]
        .into_iter()
        .filter(|c| self.has(*c))
        .collect()
    }
}

/// One writable field as a provider supports it (`ProviderInfo.fields`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSupport {
    pub field: Field,
    /// Its contacts show it when read.
    pub read: bool,
    /// A create or an update can set it.
    pub write: bool,
    /// An update can clear it.
    pub clear: bool,
    /// `contacts(filter:)` can find its contacts by it: a `ContactFilter` field tests it, and
    /// the provider's listing shows it (the gateway checks every filter on what it reads).
    pub filter: bool,
}

/// Every writable field as `provider` supports it, in the field table's order: from what it
/// can do (`capabilities`), hold (`write_fields`), read back and clear (`field_access`).
pub fn field_support(provider: &dyn Provider) -> Vec<FieldSupport> {
    let capabilities = provider.capabilities();
    let holds = provider.write_fields();
    let access = provider.field_access();
    let reads = capabilities.get || capabilities.list;
    let writes = capabilities.create || capabilities.update;
    Field::ALL
        .iter()
        .map(|&field| {
            let read = reads && access.read.contains(field);
            let write = writes && field.capacity(&holds) > 0;
            FieldSupport {
                field,
                read,
                write,
                clear: write && capabilities.update && access.clear.contains(field),
                filter: read && capabilities.list && !field.filtered_by().is_empty(),
            }
        })
        .collect()
}

/// Why a provider call failed. Each variant has one GraphQL code (`graphql/errors.rs`); what
/// a caller decides on (retry a read? might a write have happened?) is data, set where the
/// fact is known, never read from a message.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider} is unavailable: {reason}")]
    Unavailable {
        provider: ProviderId,
        reason: String,
        /// A read may be tried again (a 5xx or a connection failure).
        retryable: bool,
        /// The request may have reached the provider and been applied: no usable answer came
        /// (the connection dropped after sending, or a 2xx answer could not be read).
        may_have_been_applied: bool,
    },
    #[error("{provider} did not answer within {timeout_ms} ms")]
    Timeout {
        provider: ProviderId,
        timeout_ms: u64,
    },
    #[error("{provider} is rate limiting requests")]
    RateLimited {
        provider: ProviderId,
        retry_after_secs: Option<u64>,
    },
    #[error("{provider} refused the configured credentials (HTTP {status})")]
    AuthFailed { provider: ProviderId, status: u16 },
    #[error("{provider} does not support {operation}")]
    Unsupported {
        provider: ProviderId,
        operation: &'static str,
    },
    #[error("{provider} is not configured")]
    NotConfigured { provider: ProviderId },
    /// An id this provider's records cannot have: its document fixes the format (MaiAgent
    /// UUIDs, Mainbrainer integers). Found before any call; the caller's mistake.
    #[error("`{}` is not a {} contact id", crate::contact::shown(&format!("{provider}:{native_id}")), provider.display_name())]
    InvalidId {
        provider: ProviderId,
        native_id: String,
    },
    /// No such record (HTTP 404, or an id no record can have). `detail` is what the provider
    /// said beyond that, when it matters (Mainbrainer names the record it created instead).
    #[error("{provider} answered HTTP 404 (not found){}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    NotFound {
        provider: ProviderId,
        detail: Option<String>,
    },
    /// The request already made every upstream call it may (`[limits] max_upstream_calls`):
    /// this one was not sent.
    #[error("{provider} was not called: the request already made the {limit} upstream calls it may make ([limits] max_upstream_calls)")]
    BudgetExceeded { provider: ProviderId, limit: u64 },
    /// The request's deadline (`[limits] request_timeout_ms`) passed before the answer came;
    /// `may_have_been_applied` when the call had been sent.
    #[error("{provider} did not answer within the request's deadline of {timeout_ms} ms ([limits] request_timeout_ms)")]
    RequestTimeout {
        provider: ProviderId,
        timeout_ms: u64,
        may_have_been_applied: bool,
    },
    /// The provider answered 4xx to what we sent (validation and the like).
    #[error("{provider} rejected the request (HTTP {status}): {message}")]
    Rejected {
        provider: ProviderId,
        status: u16,
        message: String,
    },
}

impl ProviderError {
    pub fn provider(&self) -> ProviderId {
        match self {
            ProviderError::Unavailable { provider, .. }
            | ProviderError::Timeout { provider, .. }
            | ProviderError::RateLimited { provider, .. }
            | ProviderError::AuthFailed { provider, .. }
            | ProviderError::Unsupported { provider, .. }
            | ProviderError::NotConfigured { provider }
            | ProviderError::InvalidId { provider, .. }
            | ProviderError::NotFound { provider, .. }
            | ProviderError::BudgetExceeded { provider, .. }
            | ProviderError::RequestTimeout { provider, .. }
            | ProviderError::Rejected { provider, .. } => *provider,
        }
    }

    /// Whether a read may be tried again: a 5xx, a timeout, a connection failure.
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::Unavailable { retryable, .. } => *retryable,
            ProviderError::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether a write that failed so may still have been applied upstream (so it is not
    /// retried, and the caller is told to check).
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            ProviderError::Unavailable {
                may_have_been_applied,
                ..
            }
            | ProviderError::RequestTimeout {
                may_have_been_applied,
                ..
            } => *may_have_been_applied,
            ProviderError::Timeout { .. } => true,
            _ => false,
        }
    }

    /// This error, from a read made after a write the provider took (a read-back): the write
    /// stands whatever failed the read, so the error says it may have been applied.
    pub fn after_applied_write(self) -> Self {
        if self.may_have_been_applied() {
            return self;
        }
        ProviderError::Unavailable {
            provider: self.provider(),
            reason: format!("the write was taken, but reading the contact back failed: {self}"),
            retryable: false,
            may_have_been_applied: true,
        }
    }

    /// The HTTP status the provider answered, for the errors that carry one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Rejected { status, .. } | ProviderError::AuthFailed { status, .. } => {
                Some(*status)
            }
            ProviderError::NotFound { .. } => Some(404),
            _ => None,
        }
    }

    /// The provider refused what was sent (HTTP `status`), for the reason given.
    pub fn rejected(provider: ProviderId, status: u16, message: impl Into<String>) -> Self {
        ProviderError::Rejected {
            provider,
            status,
            message: message.into(),
        }
    }

    /// No such contact.
    pub fn not_found(provider: ProviderId) -> Self {
        ProviderError::NotFound {
            provider,
            detail: None,
        }
    }

    /// No contact `native_id`, naming it (MagicBlocks, Whautomate).
    pub fn no_contact(provider: ProviderId, native_id: &str) -> Self {
        ProviderError::NotFound {
            provider,
            detail: Some(format!("no contact {native_id}")),
        }
    }

    /// The provider answered in a way the gateway cannot use (not worth retrying).
    pub fn unavailable(provider: ProviderId, reason: impl Into<String>) -> Self {
        ProviderError::Unavailable {
            provider,
            reason: reason.into(),
            retryable: false,
            may_have_been_applied: false,
        }
    }

    /// A 2xx body the adapter could not read: the request was taken, so a write happened.
    pub fn unparseable(provider: ProviderId, what: impl std::fmt::Display) -> Self {
        ProviderError::Unavailable {
            provider,
            reason: format!("unparseable response: {what}"),
            retryable: false,
            may_have_been_applied: true,
        }
    }
}

/// What a listing is narrowed by. Adapters push down what their API can filter on and may
/// return more; the gateway re-checks every contact against the whole filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ListQuery {
    pub search: Option<String>,
    /// Lower-cased.
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    pub tags: Vec<String>,
    pub company: Option<String>,
}

/// A window of a provider's listing.
#[derive(Clone, Debug, Default)]
pub struct ListChunk {
    pub contacts: Vec<Contact>,
    /// Nothing follows this chunk.
    pub exhausted: bool,
    /// The provider's own count of matching records, when it reports one.
    pub total: Option<u64>,
}

impl ListChunk {
    /// Nothing, and nothing follows.
    pub fn empty() -> Self {
        ListChunk {
            exhausted: true,
            ..ListChunk::default()
        }
    }
}

/// One provider adapter. Every method not in its capabilities answers `Unsupported`.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's one upstream client.
    fn client(&self) -> &http::UpstreamClient;
    fn capabilities(&self) -> Capabilities;

    fn id(&self) -> ProviderId {
        self.client().provider()
    }

    /// The contact with this native id; `None` when the provider has none.
    async fn get(&self, native_id: &str) -> Result<Option<Contact>, ProviderError> {
        let _ = native_id;
        Err(self.unsupported("get"))
    }

    /// Records `offset .. offset + limit` of the provider's (possibly narrowed) listing, in the
    /// provider's own stable order.
    async fn list(
        &self,
        query: &ListQuery,
        offset: u64,
        limit: u32,
    ) -> Result<ListChunk, ProviderError> {
        let _ = (query, offset, limit);
        Err(self.unsupported("list"))
    }

    /// The region national phone numbers from this provider are read in.
    fn region(&self) -> Option<phonenumber::country::Id> {
        self.client().region()
    }

    /// Whether a native id has the provider's id format (checked before writes).
    fn accepts_native_id(&self, native_id: &str) -> bool {
        !native_id.trim().is_empty()
    }

    /// What this provider's record can hold on writes (nothing, by default).
    fn write_fields(&self) -> WriteFields {
        WriteFields::default()
    }

    /// Which writable fields its contacts show when read and an update can clear (none, by
    /// default), declared beside `write_fields`.
    fn field_access(&self) -> FieldAccess {
        FieldAccess::default()
    }

    /// Creates a contact; returns it as the provider stored it. Never retried: a timeout may
    /// have created it.
    async fn create(&self, input: &NewContact) -> Result<Contact, ProviderError> {
        let _ = input;
        Err(self.unsupported("create"))
    }

    /// Applies a patch: fields the patch keeps keep their values. A missing contact is
    /// `NotFound`.
    async fn update(
        &self,
        native_id: &str,
        patch: &ContactPatch,
    ) -> Result<Contact, ProviderError> {
        let _ = (native_id, patch);
        Err(self.unsupported("update"))
    }

    /// A native upsert by the provider's own matching rules (only where `native_upsert`).
    async fn upsert(&self, input: &NewContact) -> Result<Contact, ProviderError> {
        let _ = input;
        Err(self.unsupported("upsert"))
    }

    /// Deletes a contact. A missing contact is `NotFound`; a contact the
    /// provider refuses to delete is `Rejected` with the provider's reason.
    async fn delete(&self, native_id: &str) -> Result<(), ProviderError> {
        let _ = native_id;
        Err(self.unsupported("delete"))
    }

    /// Adds tags (present ones are a no-op); returns the contact's tags afterwards.
    async fn add_tags(
        &self,
        native_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, ProviderError> {
        let _ = (native_id, tags);
        Err(self.unsupported("tags"))
    }

    /// Removes tags (absent ones are a no-op); returns the contact's tags afterwards.
    async fn remove_tags(
        &self,
        native_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, ProviderError> {
        let _ = (native_id, tags);
        Err(self.unsupported("tags"))
    }

    /// Puts a phone (or email) on the provider's do-not-contact mechanism; returns what was
    /// applied, in words.
    async fn do_not_contact(&self, request: &DoNotContact) -> Result<String, ProviderError> {
        let _ = request;
        Err(self.unsupported("do-not-contact"))
    }

    fn unsupported(&self, operation: &'static str) -> ProviderError {
        ProviderError::Unsupported {
            provider: self.id(),
            operation,
        }
    }

    /// `ProviderError::rejected` by this provider.
    fn rejected(&self, status: u16, message: impl Into<String>) -> ProviderError
    where
        Self: Sized,
    {
        ProviderError::rejected(self.id(), status, message)
    }
}

/// Serves an offset window from one answer of an API that pages by `limit` and `offset`:
/// `records` as answered (more than `limit` are cut, and then the window is not the end),
/// `total` and `has_more` as the answer says them. Only the kept records are mapped.
pub fn window_from_offset<T>(
    records: Vec<T>,
    offset: u64,
    limit: u32,
    total: Option<u64>,
    has_more: Option<bool>,
    to_contact: impl FnMut(T) -> Result<Contact, ProviderError>,
) -> Result<ListChunk, ProviderError> {
    let received = records.len();
    let contacts = records
        .into_iter()
        .take(limit as usize)
        .map(to_contact)
        .collect::<Result<Vec<_>, _>>()?;
    let exhausted = match has_more {
        Some(more) => !more,
        // Without a word on the rest: a short answer, or the total reached, ends it.
        None => received < limit as usize || total.is_some_and(|t| offset + received as u64 >= t),
    };
    Ok(ListChunk {
        contacts,
        exhausted: exhausted && received <= limit as usize,
        total,
    })
}

/// One fetched page of a page-numbered API.
pub struct NumberedPage {
    pub contacts: Vec<Contact>,
    pub total: Option<u64>,
    /// The provider says more pages follow; `None` when it does not say (a short page ends it).
    pub has_more: Option<bool>,
}

/// Serves an offset window from an API that pages by number (1-based) and size: the page size
/// is the window's `limit`, so a window spans at most two pages.
pub async fn window_from_pages<F, Fut>(
    offset: u64,
    limit: u32,
    fetch_page: F,
) -> Result<ListChunk, ProviderError>
where
    F: Fn(u64, u32) -> Fut,
    Fut: Future<Output = Result<NumberedPage, ProviderError>>,
{
    let size = limit.max(1);
    let first_page = offset / size as u64 + 1;
    let skip = (offset % size as u64) as usize;
    let mut contacts = Vec::new();
    let mut total = None;
    let mut exhausted = false;
    let pages = if skip == 0 { 1 } else { 2 };
    for page in first_page..first_page + pages {
        let fetched = fetch_page(page, size).await?;
        total = fetched.total.or(total);
        let short = fetched.contacts.len() < size as usize;
        contacts.extend(fetched.contacts);
        if fetched.has_more == Some(false) || (fetched.has_more.is_none() && short) {
            exhausted = true;
            break;
        }
    }
    let contacts: Vec<Contact> = contacts
        .into_iter()
        .skip(skip)
        .take(size as usize)
        .collect();
    Ok(ListChunk {
        contacts,
        exhausted,
        total,
    })
}

/// How a provider wants its key presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `Authorization: <scheme> <key>`.
    Scheme(&'static str),
    /// The key alone, in a header of its own.
    Header(&'static str),
}

/// A key of `[providers.<id>]` beyond the common ones (`base_url`, `api_key`, `timeout_ms`…).
pub struct Setting {
    pub key: &'static str,
    /// Start-up stops without it, with `about` in the message.
    pub required: bool,
    /// What it is, for messages.
    pub about: &'static str,
}

/// How the gateway paces a provider whose config says nothing (`[providers.<id>] rate_per_sec`,
/// `burst`, `follow_rate_limit_headers`): what its document says of its rate limit.
pub struct DefaultBudget {
    /// A token bucket where the provider documents a limit; `None` where it documents none.
    pub bucket: Option<Bucket>,
    /// The provider reports its budget in `X-RateLimit-*` headers on every answer.
    pub follow_rate_limit_headers: bool,
}

impl DefaultBudget {
    /// No documented limit: no bucket (every provider's 429 still pauses it).
    const NONE: DefaultBudget = DefaultBudget {
        bucket: None,
        follow_rate_limit_headers: false,
    };
}

/// Everything the gateway knows of one provider besides its adapter's code: a sixth provider
/// is one adapter module, one simulator module, one line in `contact::provider_ids!` and one
/// entry here.
pub struct Descriptor {
    pub id: ProviderId,
    pub auth: Auth,
    pub settings: &'static [Setting],
    pub budget: DefaultBudget,
    /// Builds the adapter from its client, its config (whose settings are checked) and the
    /// gateway's store (for an adapter that keeps a ledger of its writes: Mainbrainer).
    pub adapter: fn(http::UpstreamClient, &ProviderConfig, Option<&Store>) -> Arc<dyn Provider>,
    pub simulator: crate::sandbox::Simulator,
}

/// The providers, in `ProviderId` order.
pub static DESCRIPTORS: [Descriptor; ProviderId::ALL.len()] = [
    Descriptor {
        id: ProviderId::Magicblocks,
        auth: Auth::Bearer,
        settings: &[],
        // NOTES 1.5: no rate limit documented.
        budget: DefaultBudget::NONE,
        adapter: |client, _, _| Arc::new(magicblocks::MagicBlocks::new(client)),
        simulator: crate::sandbox::magicblocks::SIMULATOR,
    },
    Descriptor {
        id: ProviderId::Consuelo,
        auth: Auth::Bearer,
        settings: &[Setting {
            key: "workspace_id",
            required: true,
            about: "Consuelo needs the workspace id its API asks for (sent as `workspaceId`)",
        }],
        // NOTES 2.4: the limit depends on the plan, and every answer carries
        // `X-RateLimit-Limit`, `-Remaining` and `-Reset`: follow them rather than guess a plan.
        budget: DefaultBudget {
            bucket: None,
            follow_rate_limit_headers: true,
        },
        adapter: |client, config, _| {
            let workspace = config.setting("workspace_id").unwrap_or_default();
            Arc::new(consuelo::Consuelo::new(client, workspace.to_string()))
        },
        simulator: crate::sandbox::consuelo::SIMULATOR,
    },
    Descriptor {
        id: ProviderId::Whautomate,
        // whautomate.txt: `x-api-key` header on every operation.
        auth: Auth::Header("x-api-key"),
        settings: &[Setting {
            key: "location_id",
            required: false,
            about: "the Whautomate location new contacts join when they name none (for accounts \
                    that require one)",
        }],
        // NOTES 3.4: undocumented; sister products state 100 requests a minute (unconfirmed).
        budget: DefaultBudget {
            bucket: Some(Bucket {
                rate_per_sec: 100.0 / 60.0,
                burst: 100,
            }),
            follow_rate_limit_headers: false,
        },
        adapter: |client, config, _| {
            let location = config.setting("location_id").map(str::to_string);
            Arc::new(whautomate::Whautomate::new(client, location))
        },
        simulator: crate::sandbox::whautomate::SIMULATOR,
    },
    Descriptor {
        id: ProviderId::Maiagent,
        // maiagent.txt: the scheme word is `Api-Key`, not `Bearer`.
        auth: Auth::Scheme("Api-Key"),
        settings: &[],
        // NOTES 4.4: no rate limit documented.
        budget: DefaultBudget::NONE,
        adapter: |client, _, _| Arc::new(maiagent::MaiAgent::new(client)),
        simulator: crate::sandbox::maiagent::SIMULATOR,
    },
    Descriptor {
        id: ProviderId::Mainbrainer,
        auth: Auth::Bearer,
        settings: &[Setting {
            key: "list_id",
            required: false,
            about: "the Mainbrainer list new contacts join",
        }],
        // NOTES 5.6: a burst of 100 per 10 s on the smallest plan (Freemium).
        budget: DefaultBudget {
            bucket: Some(Bucket {
                rate_per_sec: 10.0,
                burst: 100,
            }),
            follow_rate_limit_headers: false,
        },
        adapter: |client, config, store| {
            let list = config.setting("list_id").map(str::to_string);
            let ledger = store.cloned().map(mainbrainer::Ledger::new);
            Arc::new(mainbrainer::Mainbrainer::new(client, list).with_ledger(ledger))
        },
        simulator: crate::sandbox::mainbrainer::SIMULATOR,
    },
];

/// The descriptor of `id`.
pub fn descriptor(id: ProviderId) -> &'static Descriptor {
    &DESCRIPTORS[id.index()]
}

/// The enabled adapters, by id.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<ProviderId, Arc<dyn Provider>>,
}

impl Registry {
    /// Builds an adapter for every configured provider, all sending through one connection
    /// pool, without a store (Mainbrainer keeps no ledger then, so it reads nothing).
    pub fn from_config(configs: &BTreeMap<ProviderId, ProviderConfig>) -> Self {
        Self::build(configs, None)
    }

    /// Like `from_config`, the adapters that keep a ledger keeping it in `store`.
    pub fn with_store(configs: &BTreeMap<ProviderId, ProviderConfig>, store: &Store) -> Self {
        Self::build(configs, Some(store))
    }

    fn build(configs: &BTreeMap<ProviderId, ProviderConfig>, store: Option<&Store>) -> Self {
        let pool = http::pool();
        let providers = configs
            .iter()
            .map(|(&id, config)| {
                let client = http::UpstreamClient::with_pool(id, config, pool.clone());
                (id, (descriptor(id).adapter)(client, config, store))
            })
            .collect();
        Registry { providers }
    }

    pub fn get(&self, id: ProviderId) -> Option<&Arc<dyn Provider>> {
        self.providers.get(&id)
    }

    /// The adapter for `id`, or `PROVIDER_NOT_CONFIGURED`.
    pub fn require(&self, id: ProviderId) -> Result<&Arc<dyn Provider>, ProviderError> {
        self.get(id)
            .ok_or(ProviderError::NotConfigured { provider: id })
    }

    /// The adapter for `id` if it can do `capability`: checked here, once, before any call.
    pub fn capable(
        &self,
        id: ProviderId,
        capability: Capability,
    ) -> Result<&Arc<dyn Provider>, ProviderError> {
        let provider = self.require(id)?;
        if provider.capabilities().has(capability) {
            Ok(provider)
        } else {
            Err(provider.unsupported(capability.operation()))
        }
    }

    /// Enabled adapters in `ProviderId` order.
    pub fn enabled(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.providers.values()
    }
}

#[cfg(test)]
mod descriptor_tests {
    use super::*;

    #[test]
    fn descriptors_are_in_provider_id_order() {
        for (i, id) in ProviderId::ALL.into_iter().enumerate() {
            assert_eq!(DESCRIPTORS[i].id, id);
            assert_eq!(descriptor(id).id, id);
        }
    }
}
