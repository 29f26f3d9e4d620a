//! The GraphQL face of the unified contact and its parts.

use super::errors::report_provider_errors;
use crate::contact::{Contact, ContactSource, MatchField, ProviderId};
use crate::gateway::consent::{self as registry, RequestRegistry};
use crate::gateway::people::{self, FieldValue, MatchKey, RequestSearches};
use crate::gateway::writes::{self, DoNotContactStatus};
use crate::gateway::Gateway;
use crate::providers::{self as core, Provider};
use crate::write::UserError;
use async_graphql::parser::types::Field;
use async_graphql::{
    ComplexObject, Context, ContextSelectionSet, Enum, Json, Object, OutputType, Positioned,
    Result, ServerResult, SimpleObject, Value, ID,
};
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "Capability", remote = "crate::providers::Capability")]
pub enum CapabilityGql {
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

/// What a provider calls a group of contacts.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum GroupKind {
    /// A MaiAgent inbox (conversation platform).
    Inbox,
    /// A Whautomate location.
    Location,
    /// A Mainbrainer list.
    List,
    /// A Consuelo workspace.
    Workspace,
    /// Anything else a provider groups by.
    Other,
}

impl From<&str> for GroupKind {
    fn from(kind: &str) -> Self {
        match kind {
            "inbox" => GroupKind::Inbox,
            "location" => GroupKind::Location,
            "list" => GroupKind::List,
            "workspace" => GroupKind::Workspace,
            _ => GroupKind::Other,
        }
    }
}

#[derive(SimpleObject)]
pub struct PersonName {
    pub first: Option<String>,
    pub middle: Option<String>,
    pub last: Option<String>,
    pub full: Option<String>,
}

#[derive(SimpleObject)]
pub struct EmailAddress {
    pub address: String,
    /// The provider's label ("work", "home"…).
    #[graphql(name = "type")]
    pub kind: Option<String>,
    pub primary: bool,
}

#[derive(SimpleObject)]
pub struct PhoneNumber {
    /// As the provider holds it.
    pub number: String,
    /// E.164, when the number parses with the provider's default region.
    pub e164: Option<String>,
    #[graphql(name = "type")]
    pub kind: Option<String>,
    pub primary: bool,
}

#[derive(SimpleObject)]
pub struct ContactGroup {
    pub id: ID,
    pub name: Option<String>,
    pub kind: GroupKind,
}

/// Consent as the provider reports it, and the gateway's do-not-contact registry: a null
/// field means nobody says.
#[derive(SimpleObject)]
pub struct Consent {
    pub email_opt_in: Option<bool>,
    pub sms_opt_in: Option<bool>,
    /// True when any of the contact's phones (E.164) or emails is in the gateway's
    /// do-not-contact registry, whichever provider the contact comes from; otherwise what the
    /// provider says (null: it does not say).
    pub do_not_contact: Option<bool>,
}

/// A contact from one provider, in the unified shape.
pub struct ContactObject(pub Arc<Contact>);

#[Object(name = "Contact")]
impl ContactObject {
    /// Global id: `"<provider>:<nativeId>"`.
    async fn id(&self) -> ID {
        ID(self.0.global_id().to_string())
    }
    async fn provider(&self) -> ProviderId {
        self.0.provider
    }
    /// The provider's own id.
    async fn native_id(&self) -> &str {
        &self.0.native_id
    }
    async fn name(&self) -> PersonName {
        let n = &self.0.name;
        PersonName {
            first: n.first.clone(),
            middle: n.middle.clone(),
            last: n.last.clone(),
            full: n.full.clone(),
        }
    }
    /// The name to show: the full name, else the company, an email, a phone, the id.
    async fn display_name(&self) -> String {
        self.0.display_name()
    }
    async fn emails(&self) -> Vec<EmailAddress> {
        self.0
            .emails
            .iter()
            .map(|e| EmailAddress {
                address: e.address.clone(),
                kind: e.kind.clone(),
                primary: e.primary,
            })
            .collect()
    }
    async fn phones(&self) -> Vec<PhoneNumber> {
        self.0
            .phones
            .iter()
            .map(|p| PhoneNumber {
                number: p.number.clone(),
                e164: p.e164.clone(),
                kind: p.kind.clone(),
                primary: p.primary,
            })
            .collect()
    }
    /// The primary email address, else the first.
    async fn primary_email(&self) -> Option<&str> {
        self.0.primary_email().map(|e| e.address.as_str())
    }
    /// The primary phone in E.164 when it parses, else as received.
    async fn primary_phone(&self) -> Option<&str> {
        self.0.primary_phone().map(|p| p.best())
    }
    async fn company(&self) -> Option<&str> {
        self.0.company.as_deref()
    }
    async fn notes(&self) -> Option<&str> {
        self.0.notes.as_deref()
    }
    async fn tags(&self) -> &[String] {
        &self.0.tags
    }
    async fn stage(&self) -> Option<&str> {
        self.0.stage.as_deref()
    }
    /// MaiAgent inboxes, the Whautomate location, the Mainbrainer list, the Consuelo workspace.
    async fn groups(&self) -> Vec<ContactGroup> {
        self.0
            .groups
            .iter()
            .map(|g| ContactGroup {
                id: ID(g.id.clone()),
                name: g.name.clone(),
                kind: g.kind.as_str().into(),
            })
            .collect()
    }
    async fn custom_fields(&self) -> Json<&serde_json::Map<String, serde_json::Value>> {
        Json(&self.0.custom_fields)
    }
    /// Null when the provider says nothing about consent and none of the contact's phones and
    /// emails is in the do-not-contact registry; a registry hit shows as
    /// `{ doNotContact: true }` even where the provider says nothing.
    async fn consent(&self, ctx: &Context<'_>) -> Result<Option<Consent>> {
        let registered = match ctx.data_opt::<RequestRegistry>() {
            Some(loader) => registry::any_registered(loader, registry::keys_of(&self.0))
                .await
                .map_err(|e| super::errors::store_error(&e.to_string()))?,
            None => false,
        };
        let said = self.0.consent.as_ref();
        if said.is_none() && !registered {
            return Ok(None);
        }
        let said = said.cloned().unwrap_or_default();
        Ok(Some(Consent {
            email_opt_in: said.email_opt_in,
            sms_opt_in: said.sms_opt_in,
            do_not_contact: if registered {
                Some(true)
            } else {
                said.do_not_contact
            },
        }))
    }
    async fn is_test(&self) -> Option<bool> {
        self.0.is_test
    }
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        self.0.created_at
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.updated_at
    }
    /// The provider's record as received; for a GATEWAY_LEDGER contact, the record as the
    /// gateway's writes left it.
    async fn raw(&self) -> Json<&serde_json::Value> {
        Json(&self.0.raw)
    }
    /// Where its fields come from: the provider, or (GATEWAY_LEDGER) the gateway's ledger of
    /// what it wrote to a provider that cannot be read (Mainbrainer): the fields as the
    /// gateway's writes left them, `updatedAt` its last write.
    async fn source(&self) -> ContactSource {
        self.0.source
    }
    /// The same person in other providers: contacts holding one of this contact's emails
    /// (compared lower-cased) or phones (compared as E.164), each with what it shares. Found
    /// through each provider's own search; a provider that cannot search a field (Whautomate
    /// has no email, Mainbrainer reads nothing) contributes none for it. The searches count
    /// against `max_upstream_calls` and are shared by every contact of the request asking
    /// for the same email or phone. A failing provider adds an error and leaves the others'
    /// matches in place.
    async fn duplicates_of(&self, ctx: &Context<'_>) -> Result<Vec<DuplicateMatch>> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let searches = gateway.searches_for(&people::keys_of(&self.0), Some(self.0.provider));
        let matches = match ctx.data_opt::<RequestSearches>() {
            Some(loader) => people::find(loader, searches).await,
            None => people::find(&people::for_request(gateway.clone()), searches).await,
        };
        report_provider_errors(ctx, &matches.errors);
        Ok(matches
            .found
            .into_iter()
            .map(|m| DuplicateMatch {
                contact: ContactObject(m.contact),
                reasons: m.reasons.into_iter().map(Into::into).collect(),
            })
            .collect())
    }
}

/// What two contacts share that makes them one person.
#[derive(SimpleObject)]
pub struct MatchReason {
    pub field: MatchField,
    /// The email (lower-cased) or the phone (E.164) both hold.
    pub value: String,
}

impl From<MatchKey> for MatchReason {
    fn from(key: MatchKey) -> Self {
        MatchReason {
            field: key.field,
            value: key.value,
        }
    }
}

/// A contact in another provider taken for the same person.
#[derive(SimpleObject)]
pub struct DuplicateMatch {
    pub contact: ContactObject,
    /// Every email and phone it shares with the contact asked about: emails first.
    pub reasons: Vec<MatchReason>,
}

/// One person across providers: the contacts holding an email or a phone, and what each says
/// of every unified field.
#[derive(SimpleObject)]
pub struct Person {
    /// In `ProviderId` order, each provider's in its own order.
    pub contacts: Vec<ContactObject>,
    /// Every value the contacts hold, field by field (in the write inputs' order), each
    /// field's values most recently updated first (undated ones last).
    pub fields: Vec<PersonField>,
}

/// One unified field's value as one contact holds it.
#[derive(SimpleObject)]
pub struct PersonField {
    /// The field as `createContact` and `updateContact` inputs name it: `firstName`,
    /// `emails`, `company`…
    pub name: String,
    /// The value in the shape those inputs take, so it can be written to another provider.
    pub value: Option<Json<serde_json::Value>>,
    /// Which provider holds it.
    pub provider: ProviderId,
    /// When the contact holding it was last updated (providers date records, not fields).
    pub updated_at: Option<DateTime<Utc>>,
    /// The contact holding it.
    pub contact_id: ID,
}

impl From<FieldValue> for PersonField {
    fn from(v: FieldValue) -> Self {
        PersonField {
            name: v.field.input_name().to_string(),
            updated_at: v.updated_at(),
            provider: v.contact.provider,
            contact_id: ID(v.contact.global_id().to_string()),
            value: Some(Json(v.value)),
        }
    }
}

#[derive(SimpleObject)]
pub struct ContactEdge {
    pub cursor: String,
    pub node: ContactObject,
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ContactConnection {
    pub edges: Vec<ContactEdge>,
    pub page_info: PageInfo,
    /// The sum of the providers' totals when every provider reports one and no filter had
    /// to be evaluated in the gateway; otherwise null.
    pub total_count: Option<u64>,
}

#[ComplexObject]
impl ContactConnection {
    async fn nodes(&self) -> Vec<ContactObject> {
        self.edges
            .iter()
            .map(|e| ContactObject(e.node.0.clone()))
            .collect()
    }
}

#[derive(SimpleObject)]
pub struct ProviderInfo {
    pub id: ProviderId,
    pub name: String,
    pub enabled: bool,
    /// What the gateway performs on this provider, natively, emulated, or from its ledger
    /// (`ledgerCapabilities`).
    pub capabilities: Vec<CapabilityGql>,
    /// Those of `capabilities` the gateway serves from its ledger of what it wrote to this
    /// provider, not from the provider: Mainbrainer's LIST and GET (it documents no read
    /// endpoint). They show only contacts written through the gateway, with the fields as
    /// written (`Contact.source: GATEWAY_LEDGER`); another id is UNSUPPORTED_BY_PROVIDER.
    pub ledger_capabilities: Vec<CapabilityGql>,
    /// Per writable field (`CreateContactInput`'s), what the gateway can do with it here;
    /// empty when the provider is not enabled.
    pub fields: Vec<FieldSupport>,
}

/// One writable field, as a provider supports it.
#[derive(SimpleObject)]
pub struct FieldSupport {
    /// Its name in `CreateContactInput` and `UpdateContactInput` ("firstName", "emails"…).
    pub field: String,
    /// Contacts read from this provider show it (`contact`, `contacts`).
    pub read: bool,
    /// `createContact` and `updateContact` can set it (else FIELD_NOT_SUPPORTED).
    pub write: bool,
    /// `updateContact` can clear it: null or an empty list (for `customFields`, a key set to
    /// null).
    pub clear: bool,
    /// `contacts(filter:)` finds this provider's contacts by it (`search`, `email`, `phone`,
    /// `tags`, `company`).
    pub filter: bool,
}

impl ProviderInfo {
    /// `provider` is its adapter when enabled.
    pub fn new(id: ProviderId, provider: Option<&dyn Provider>) -> Self {
        let capabilities = provider.map(|p| p.capabilities()).unwrap_or_default();
        let listed = |list: Vec<core::Capability>| list.into_iter().map(Into::into).collect();
        ProviderInfo {
            id,
            name: id.display_name().to_string(),
            enabled: provider.is_some(),
            // A disabled provider's are all false: none listed.
            capabilities: listed(capabilities.listed()),
            ledger_capabilities: listed(capabilities.from_ledger()),
            fields: provider
                .map(core::field_support)
                .unwrap_or_default()
                .into_iter()
                .map(|f| FieldSupport {
                    field: f.field.input_name().to_string(),
                    read: f.read,
                    write: f.write,
                    clear: f.clear,
                    filter: f.filter,
                })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct PhoneNormalization {
    pub input: String,
    /// E.164 when the input reads as a phone number.
    pub e164: Option<String>,
    /// A possible number for its region (libphonenumber's validity check).
    pub valid: bool,
    /// The country calling code, e.g. 1 or 44.
    pub country_code: Option<i32>,
    /// The national significant number, digits only.
    pub national_number: Option<String>,
    /// The ISO 3166 region the number belongs to, e.g. "US".
    pub region: Option<String>,
}

/// One provider's propagation of a do-not-contact entry.
#[derive(SimpleObject)]
pub struct DoNotContactResult {
    pub provider: ProviderId,
    pub status: DoNotContactStatus,
    pub message: Option<String>,
    /// The error code when FAILED, and the last failure's when PENDING
    /// (PROVIDER_UNAVAILABLE, PROVIDER_RATE_LIMITED, PROVIDER_AUTH_FAILED…).
    pub code: Option<String>,
    /// Calls made to the provider so far.
    pub attempts: u64,
    /// When the gateway sends it again (PENDING only).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<writes::DoNotContactResult> for DoNotContactResult {
    fn from(r: writes::DoNotContactResult) -> Self {
        let failing = matches!(
            r.status,
            DoNotContactStatus::Failed | DoNotContactStatus::Pending
        );
        DoNotContactResult {
            provider: r.provider,
            status: r.status,
            message: Some(r.message).filter(|m| !m.is_empty()),
            code: r
                .error
                .filter(|_| failing)
                .map(|e| super::errors::code(&e).to_string()),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
        }
    }
}

/// A phone and/or email in the gateway's do-not-contact registry.
#[derive(SimpleObject)]
pub struct DoNotContactEntry {
    /// E.164.
    pub phone: Option<String>,
    /// Lower-cased.
    pub email: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it was removed from the registry (removeFromDoNotContact); null while it is in it.
    pub removed_at: Option<DateTime<Utc>>,
    /// Where each provider's propagation stands, in ProviderId order.
    pub results: Vec<DoNotContactResult>,
}

impl From<registry::DoNotContactEntry> for DoNotContactEntry {
    fn from(e: registry::DoNotContactEntry) -> Self {
        DoNotContactEntry {
            phone: e.phone,
            email: e.email,
            reason: e.reason,
            created_at: e.created_at,
            removed_at: e.removed_at,
            results: e.results.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct DoNotContactEntryEdge {
    pub cursor: String,
    pub node: DoNotContactEntry,
}

/// Entries of the registry, oldest first.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct DoNotContactEntryConnection {
    pub edges: Vec<DoNotContactEntryEdge>,
    pub page_info: PageInfo,
    /// How many entries match, over all pages.
    pub total_count: u64,
}

#[ComplexObject]
impl DoNotContactEntryConnection {
    async fn nodes(&self) -> Vec<&DoNotContactEntry> {
        self.edges.iter().map(|e| &e.node).collect()
    }
}

/// Something the caller can fix. `field` is the path of the input field it is about.
#[Object(name = "UserError")]
impl UserError {
    async fn field(&self) -> Option<&[String]> {
        (!self.field.is_empty()).then_some(self.field.as_slice())
    }
    async fn message(&self) -> &str {
        &self.message
    }
    /// INVALID_EMAIL, INVALID_PHONE, REQUIRED, TOO_LONG, TOO_MANY, INVALID, FIELD_NOT_SUPPORTED,
    /// INVALID_ID, NOT_FOUND, AMBIGUOUS_MATCH, CANNOT_DELETE, PROVIDER_VALIDATION, INVALID_CSV,
    /// MALFORMED_ROW, DO_NOT_CONTACT; in `warnings`, FIELD_NOT_STORED and READ_BACK_FAILED.
    async fn code(&self) -> Option<&str> {
        Some(self.code.as_str())
    }
}

/// A list whose items are resolved one after another. async-graphql resolves a list's items
/// concurrently, holding a future per item at once (about 2 KB each: 19 MiB for the results
/// of a 10,000-row import); items that only read memory resolve as fast one at a time. The
/// schema sees a plain list. (Extensions' `resolve` hook runs for each item's fields, not for
/// the item itself.)
pub struct OneByOne<T>(pub Vec<T>);

impl<T> Default for OneByOne<T> {
    fn default() -> Self {
        OneByOne(Vec::new())
    }
}

impl<T: OutputType> OutputType for OneByOne<T> {
    fn type_name() -> Cow<'static, str> {
        Vec::<T>::type_name()
    }

    fn qualified_type_name() -> String {
        Vec::<T>::qualified_type_name()
    }

    fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
        Vec::<T>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let mut values = Vec::with_capacity(self.0.len());
        for (index, item) in self.0.iter().enumerate() {
            let ctx = ctx.with_index(index);
            let value = OutputType::resolve(item, &ctx, field)
                .await
                .map_err(|e| ctx.set_error_path(e))?;
            values.push(value);
        }
        Ok(Value::List(values))
    }
}
