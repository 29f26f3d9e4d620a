//! One person across providers: `Contact.duplicatesOf` and `Query.person`. A person is found
//! by a normalized email (trimmed, lower-cased, as the do-not-contact registry keys it) or an
//! E.164 phone, through each provider's own search: a provider whose `Capabilities` do not
//! say it searches the field (`search_email`, `search_phone`) is not asked and contributes
//! none, so what is found never depends on how far a scan got. Every match is re-checked in
//! the gateway, as `contacts(filter:)` does.
//!
//! A request's searches go through its own `DataLoader` (`for_request`), which runs each
//! (provider, key) search once per request, however many contacts or fields ask for it, in
//! the same batch or a later one. Each search is a listing window read through the read cache
//! (`Gateway::collect`), so it is cached and retired by writes like any other read, and its
//! upstream calls count against the request's `max_upstream_calls`.

use super::filter::Filter;
use super::loader::request_spawner;
use super::Gateway;
use crate::contact::{Contact, MatchField, ProviderId};
use crate::fields::Field;
use crate::providers::ProviderError;
use async_graphql::dataloader::{DataLoader, Loader};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// The most matches one search keeps (per provider and key): a person has a few records in
/// a provider, not dozens.
pub const MAX_MATCHES: usize = 20;

/// An email (trimmed, lower-cased) or a phone (E.164) a person is found by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MatchKey {
    pub field: MatchField,
    pub value: String,
}

impl MatchKey {
    /// An email as contacts are compared by it.
    pub fn email(address: &str) -> Self {
        MatchKey {
            field: MatchField::Email,
            value: address.trim().to_lowercase(),
        }
    }

    /// A phone already in E.164.
    pub fn phone(e164: impl Into<String>) -> Self {
        MatchKey {
            field: MatchField::Phone,
            value: e164.into(),
        }
    }

    /// The filter a contact must pass to be found by this key.
    fn filter(&self) -> Filter {
        match self.field {
            MatchField::Email => Filter {
                email: Some(self.value.clone()),
                ..Filter::default()
            },
            MatchField::Phone => Filter {
                phone: Some(self.value.clone()),
                ..Filter::default()
            },
        }
    }
}

/// What finds a contact's other records: its emails, then its phones that read as E.164 (a
/// number that does not is nobody's key), each once.
pub fn keys_of(contact: &Contact) -> Vec<MatchKey> {
    let emails = contact
        .emails
        .iter()
        .map(|e| MatchKey::email(&e.address))
        .filter(|k| !k.value.is_empty());
    let phones = contact
        .phones
        .iter()
        .filter_map(|p| p.e164.as_deref())
        .map(MatchKey::phone);
    let mut keys: Vec<MatchKey> = Vec::new();
    for key in emails.chain(phones) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// One search: a provider asked for the contacts holding one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SearchKey {
    pub provider: ProviderId,
    pub key: MatchKey,
}

/// What a search found (in the provider's order), or why the provider failed.
pub type Found = Result<Arc<[Arc<Contact>]>, ProviderError>;

/// Runs a request's searches, each once.
pub struct SearchLoader {
    gateway: Arc<Gateway>,
    /// Every search the request made or is making: a later ask for one (in this batch or
    /// another) waits for the same answer instead of asking the provider again.
    searches: Mutex<HashMap<SearchKey, Arc<OnceCell<Found>>>>,
}

/// A request's search loader, as resolvers find it among the request's data.
pub type RequestSearches = DataLoader<SearchLoader>;

/// A request's search loader; its batches run as the request's own work (its span and
/// upstream budget).
pub fn for_request(gateway: Arc<Gateway>) -> RequestSearches {
    let loader = SearchLoader {
        gateway,
        searches: Mutex::default(),
    };
    DataLoader::new(loader, request_spawner())
}

impl Loader<SearchKey> for SearchLoader {
    /// Kept per search, so one failing provider does not fail the others.
    type Value = Found;
    type Error = std::convert::Infallible;

    async fn load(&self, keys: &[SearchKey]) -> Result<HashMap<SearchKey, Found>, Self::Error> {
        let searches = keys.iter().map(|key| async move {
            let once = {
                let mut searches = self.searches.lock().unwrap_or_else(|e| e.into_inner());
                searches.entry(key.clone()).or_default().clone()
            };
            let found = once.get_or_init(|| self.gateway.search(key)).await;
            (key.clone(), found.clone())
        });
        Ok(join_all(searches).await.into_iter().collect())
    }
}

/// A contact found by some keys.
pub struct Match {
    pub contact: Arc<Contact>,
    /// The keys it was found by, in the order they were asked.
    pub reasons: Vec<MatchKey>,
}

/// What a set of searches found: each contact once, in `ProviderId` order and each
/// provider's own order; and one error per provider that failed.
#[derive(Default)]
pub struct Matches {
    pub found: Vec<Match>,
    pub errors: Vec<ProviderError>,
}

impl Gateway {
    /// The searches that find `keys`: one per key and enabled provider that searches its
    /// field, in `ProviderId` order, leaving out the provider `except`.
    pub fn searches_for(&self, keys: &[MatchKey], except: Option<ProviderId>) -> Vec<SearchKey> {
        self.registry
            .enabled()
            .filter(|provider| Some(provider.id()) != except)
            .flat_map(|provider| {
                let capabilities = provider.capabilities();
                keys.iter()
                    .filter(move |key| capabilities.searches(key.field))
                    .map(|key| SearchKey {
                        provider: provider.id(),
                        key: key.clone(),
                    })
            })
            .collect()
    }

    /// One search, through the read cache: up to `MAX_MATCHES` contacts of the provider
    /// holding the key. A provider that does not search the key's field finds none, unasked.
    pub async fn search(&self, search: &SearchKey) -> Found {
        let provider = self.registry.require(search.provider)?;
        if !provider.capabilities().searches(search.key.field) {
            return Ok(Arc::new([]));
        }
        let filter = search.key.filter();
        let found = self
            .collect(
                provider.as_ref(),
                &filter.to_list_query(),
                &filter,
                0,
                MAX_MATCHES,
                true,
            )
            .await?;
        Ok(found.matches.into_iter().map(|(_, c)| c).collect())
    }
}

/// Runs `searches` through the request's loader and gathers what they found.
pub async fn find(loader: &RequestSearches, searches: Vec<SearchKey>) -> Matches {
    if searches.is_empty() {
        return Matches::default();
    }
    let Ok(answers) = loader.load_many(searches.iter().cloned()).await;
    let mut matches = Matches::default();
    for search in &searches {
        match answers.get(search) {
            Some(Ok(contacts)) => {
                for contact in contacts.iter() {
                    let id = contact.global_id();
                    match matches
                        .found
                        .iter_mut()
                        .find(|m| m.contact.global_id() == id)
                    {
                        Some(m) if m.reasons.contains(&search.key) => {}
                        Some(m) => m.reasons.push(search.key.clone()),
                        None => matches.found.push(Match {
                            contact: contact.clone(),
                            reasons: vec![search.key.clone()],
                        }),
                    }
                }
            }
            // One error per provider, however many of its searches failed.
            Some(Err(e)) if !matches.errors.iter().any(|f| f.provider() == e.provider()) => {
                matches.errors.push(e.clone());
            }
            Some(Err(_)) | None => {}
        }
    }
    // Searches come provider by provider, so this only keeps the order they made.
    matches.found.sort_by_key(|m| m.contact.provider);
    matches
}

/// One unified field's value as one contact holds it.
pub struct FieldValue {
    pub field: Field,
    pub value: Value,
    /// The contact holding it: its provider, its id, and when it was last updated.
    pub contact: Arc<Contact>,
}

impl FieldValue {
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.contact.updated_at
    }
}

/// Every value the contacts hold, field by field in the field table's order (named as the
/// write inputs name them, in the shape they take, so a value can be written to another
/// provider as is), each field's values most recently updated first. Providers date records,
/// not fields, so a value is as recent as its contact's `updatedAt`; values without a date
/// come last, then ties in `ProviderId` order.
pub fn person_fields(contacts: &[Arc<Contact>]) -> Vec<FieldValue> {
    let mut values = Vec::new();
    for &field in Field::ALL {
        let mut held: Vec<FieldValue> = contacts
            .iter()
            .filter_map(|contact| {
                value_of(field, contact).map(|value| FieldValue {
                    field,
                    value,
                    contact: contact.clone(),
                })
            })
            .collect();
        held.sort_by_key(|v| {
            (
                Reverse(v.updated_at()),
                v.contact.provider,
                v.contact.native_id.clone(),
            )
        });
        values.extend(held);
    }
    values
}

/// What `contact` holds of `field`; `None` when it holds nothing (an empty list or object
/// included).
fn value_of(field: Field, contact: &Contact) -> Option<Value> {
    let text = |s: &Option<String>| s.as_ref().map(|s| Value::String(s.clone()));
    let list = |items: Vec<Value>| (!items.is_empty()).then_some(Value::Array(items));
    let consent = contact.consent.as_ref();
    match field {
        Field::FirstName => text(&contact.name.first),
        Field::MiddleName => text(&contact.name.middle),
        Field::LastName => text(&contact.name.last),
        Field::Emails => list(
            contact
                .emails
                .iter()
                .map(|e| json!({ "address": e.address, "type": e.kind, "primary": e.primary }))
                .collect(),
        ),
        // E.164 where known: a national number would be read in the writing provider's region.
        Field::Phones => list(
            contact
                .phones
                .iter()
                .map(|p| json!({ "number": p.best(), "type": p.kind, "primary": p.primary }))
                .collect(),
        ),
        Field::Company => text(&contact.company),
        Field::Notes => text(&contact.notes),
        Field::Tags => list(contact.tags.iter().map(|t| json!(t)).collect()),
        Field::Stage => text(&contact.stage),
        // A Consuelo workspace is the account's, not a group a write can name.
        Field::GroupIds => list(
            contact
                .groups
                .iter()
                .filter(|g| g.kind != "workspace")
                .map(|g| json!(g.id))
                .collect(),
        ),
        Field::CustomFields => (!contact.custom_fields.is_empty())
            .then(|| Value::Object(contact.custom_fields.clone())),
        Field::EmailOptIn => consent.and_then(|c| c.email_opt_in).map(Value::Bool),
        Field::SmsOptIn => consent.and_then(|c| c.sms_opt_in).map(Value::Bool),
        Field::IsTest => contact.is_test.map(Value::Bool),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::{Email, Group, PersonName, Phone};
    use chrono::TimeZone;

    fn contact(provider: ProviderId, native: &str, updated_day: Option<u32>) -> Contact {
        let mut c = Contact::new(provider, native, Value::Null);
        c.updated_at = updated_day.map(|d| Utc.with_ymd_and_hms(2025, 1, d, 0, 0, 0).unwrap());
        c
    }

    #[test]
    fn a_contacts_keys_are_its_emails_lower_cased_then_its_e164_phones_each_once() {
        let mut c = contact(ProviderId::Consuelo, "c1", None);
        for address in [" Ada@Example.com ", "ada@example.com", "a.l@example.org"] {
            c.emails.push(Email::only(address.into()));
        }
        c.phones.push(Phone::only("+14155550142".into(), None));
        c.phones.push(Phone::only("912345678".into(), None));
        assert_eq!(
            keys_of(&c),
            [
                MatchKey::email("ada@example.com"),
                MatchKey::email("a.l@example.org"),
                MatchKey::phone("+14155550142"),
            ],
            "a number that is not E.164 is nobody's key"
        );
    }

    #[test]
    fn each_fields_values_come_most_recently_updated_first_with_their_contact() {
        let mut old = contact(ProviderId::Magicblocks, "m1", Some(1));
        old.name = PersonName::from_parts(Some("Dan"), None, Some("Lin"));
        old.company = Some("Pacific Rim".into());
        let mut new = contact(ProviderId::Maiagent, "a1", Some(9));
        new.name = PersonName::from_full(Some("Daniel Lin"));
        let mut undated = contact(ProviderId::Consuelo, "c1", None);
        undated.name = PersonName::from_parts(Some("Daniel"), None, None);
        undated.company = Some("Pacific Rim Foods".into());
        // A workspace is no group a write can name: not a `groupIds` value.
        undated.groups.push(Group {
            id: "ws_1".into(),
            name: None,
            kind: "workspace".into(),
        });
        let fields = person_fields(&[old.into(), undated.into(), new.into()]);
        let shown: Vec<(&str, Value, ProviderId)> = fields
            .iter()
            .map(|v| (v.field.input_name(), v.value.clone(), v.contact.provider))
            .collect();
        assert_eq!(
            shown,
            [
                ("firstName", json!("Daniel"), ProviderId::Maiagent),
                ("firstName", json!("Dan"), ProviderId::Magicblocks),
                ("firstName", json!("Daniel"), ProviderId::Consuelo),
                ("lastName", json!("Lin"), ProviderId::Maiagent),
                ("lastName", json!("Lin"), ProviderId::Magicblocks),
                ("company", json!("Pacific Rim"), ProviderId::Magicblocks),
                ("company", json!("Pacific Rim Foods"), ProviderId::Consuelo),
            ]
        );
    }
}
