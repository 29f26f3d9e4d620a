//! The `Query` root.

use super::errors::{bad_user_input, provider_error, report_provider_errors};
use super::types::{
    ContactConnection, ContactEdge, ContactObject, DoNotContactEntryConnection,
    DoNotContactEntryEdge, PageInfo, Person, PhoneNormalization, ProviderInfo,
};
use crate::contact::{shown, GlobalId, ProviderId};
use crate::gateway::consent::{self, RegistryKey, RequestRegistry};
use crate::gateway::filter::Filter;
use crate::gateway::listing::{ContactsArgs, MAX_FIRST};
use crate::gateway::loader::{ContactLoader, LookupKey};
use crate::gateway::people::{self, MatchKey, RequestSearches};
use crate::gateway::Gateway;
use crate::phone;
use crate::store::dnc::EntryFilter;
use async_graphql::dataloader::DataLoader;
use async_graphql::{
    Context, Error, InputObject, Object, OutputType, PathSegment, Pos, Result, Value, ID,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Narrows `contacts`: every contact returned satisfies every field given.
#[derive(InputObject, Default)]
pub struct ContactFilter {
    /// Case-insensitive substring of the display name, an email, a phone's digits or the company.
    pub search: Option<String>,
    /// Any of the contact's emails, case-insensitively.
    pub email: Option<String>,
    /// Any format; compared as E.164 (national numbers read in the gateway's default region).
    pub phone: Option<String>,
    /// The contact has all of these tags (exact names).
    pub tags: Option<Vec<String>>,
    /// Case-insensitive equality.
    pub company: Option<String>,
}

impl ContactFilter {
    pub(crate) fn validate(self, default_region: &str) -> Result<Filter> {
        let trimmed = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let phone = match trimmed(self.phone) {
            Some(p) => Some(
                phone::to_e164(&p, phone::parse_region(default_region)).ok_or_else(|| {
                    bad_user_input(format!(
                        "filter.phone: `{}` is not a phone number",
                        shown(&p)
                    ))
                })?,
            ),
            None => None,
        };
        let mut tags: Vec<String> = self
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| trimmed(Some(t)))
            .collect();
        tags.sort();
        tags.dedup();
        Ok(Filter {
            search: trimmed(self.search),
            email: trimmed(self.email).map(|e| e.to_lowercase()),
            phone,
            tags,
            company: trimmed(self.company),
        })
    }
}

/// Settings the schema's resolvers read (besides the gateway).
pub struct QuerySettings {
    pub default_region: String,
}

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// One contact by global id; null when the provider has no such contact. `noCache: true`
    /// asks the provider even when the contact is cached.
    async fn contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default_with = "Some(false)")] no_cache: Option<bool>,
    ) -> Result<Option<ContactObject>> {
        let id = GlobalId::parse(&id).map_err(bad_user_input)?;
        let key = LookupKey {
            id,
            fresh: no_cache.unwrap_or(false),
        };
        match ctx.data::<DataLoader<ContactLoader>>()?.load_one(key).await {
            Ok(Some(found)) => found
                .map(|c| c.map(ContactObject))
                .map_err(|e| provider_error(&e)),
            Ok(None) => Ok(None),
            Err(never) => match never {},
        }
    }

    /// Contacts across providers: provider by provider in `ProviderId` order, each in its own
    /// order. A failing provider adds an error and leaves the others' contacts in place.
    /// `first` is at most 100; `noCache: true` asks the providers even when a page is cached.
    #[graphql(complexity = "5 + first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        providers: Option<Vec<ProviderId>>,
        filter: Option<ContactFilter>,
        // i64 so an Int past 32 bits still reaches this resolver and gets BAD_USER_INPUT
        // (the schema type is `Int` either way).
        #[graphql(default_with = "Some(20)")] first: Option<i64>,
        after: Option<String>,
        #[graphql(default_with = "Some(false)")] no_cache: Option<bool>,
    ) -> Result<ContactConnection> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let settings = ctx.data::<QuerySettings>()?;
        let first = first.unwrap_or(20);
        let first = usize::try_from(first)
            .ok()
            .filter(|first| *first <= MAX_FIRST)
            .ok_or_else(|| {
                bad_user_input(format!("`first` must be 0 to {MAX_FIRST}, got {first}"))
            })?;
        let filter = filter
            .unwrap_or_default()
            .validate(&settings.default_region)?;
        let args = ContactsArgs {
            providers,
            filter,
            first,
            after,
            want_total: ctx.look_ahead().field("totalCount").exists(),
            use_cache: !no_cache.unwrap_or(false),
        };
        let page = gateway.contacts(args).await.map_err(bad_user_input)?;
        let look = ctx.look_ahead();
        if look.field("nodes").field("consent").exists()
            || look.field("edges").field("node").field("consent").exists()
        {
            if let Some(registry) = ctx.data_opt::<RequestRegistry>() {
                consent::prefetch(registry, page.edges.iter().map(|e| e.contact.as_ref())).await;
            }
        }
        for error in &page.errors {
            ctx.add_error(
                ctx.set_error_path(provider_error(error).into_server_error(ctx.item.pos)),
            );
        }
        Ok(ContactConnection {
            edges: page
                .edges
                .into_iter()
                .map(|e| ContactEdge {
                    cursor: e.cursor,
                    node: ContactObject(e.contact),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor: page.end_cursor,
            },
            total_count: page.total_count,
        })
    }

    /// One person across providers: every contact holding the email (compared lower-cased) or
    /// the phone (any format, compared as E.164; national numbers read in the gateway's
    /// `default_region`), and what each says of every unified field. Give either or both.
    /// Found through each provider's own search, as `Contact.duplicatesOf` is; a failing
    /// provider adds an error and leaves the others' contacts. Null when no contact holds
    /// either.
    async fn person(
        &self,
        ctx: &Context<'_>,
        email: Option<String>,
        phone: Option<String>,
    ) -> Result<Option<Person>> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let settings = ctx.data::<QuerySettings>()?;
        let keys = person_keys(email, phone, &settings.default_region)?;
        let searches = gateway.searches_for(&keys, None);
        let matches = match ctx.data_opt::<RequestSearches>() {
            Some(loader) => people::find(loader, searches).await,
            None => people::find(&people::for_request(gateway.clone()), searches).await,
        };
        report_provider_errors(ctx, &matches.errors);
        if matches.found.is_empty() {
            return Ok(None);
        }
        let contacts: Vec<_> = matches.found.into_iter().map(|m| m.contact).collect();
        let fields = people::person_fields(&contacts)
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(Some(Person {
            contacts: contacts.into_iter().map(ContactObject).collect(),
            fields,
        }))
    }

    /// Every provider the gateway knows, enabled or not, with what it can do.
    async fn providers(&self, ctx: &Context<'_>) -> Result<Vec<ProviderInfo>> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        Ok(ProviderId::ALL
            .into_iter()
            .map(|id| ProviderInfo::new(id, gateway.registry.get(id).map(|p| p.as_ref())))
            .collect())
    }

    /// Reads a phone number in any format; `defaultRegion` (ISO 3166, e.g. "GB") is used for
    /// national numbers, else the gateway's `default_region`.
    async fn normalize_phone(
        &self,
        ctx: &Context<'_>,
        phone: String,
        default_region: Option<String>,
    ) -> Result<PhoneNormalization> {
        let settings = ctx.data::<QuerySettings>()?;
        let region_code = default_region
            .as_deref()
            .unwrap_or(&settings.default_region);
        let region = phone::parse_region(region_code).ok_or_else(|| {
            bad_user_input(format!(
                "defaultRegion: `{}` is not an ISO 3166 region code like \"US\"",
                shown(region_code)
            ))
        })?;
        let normalized = phone::normalize(&phone, Some(region));
        Ok(PhoneNormalization {
            input: phone,
            valid: normalized.as_ref().is_some_and(|n| n.valid),
            e164: normalized.as_ref().map(|n| n.e164.clone()),
            country_code: normalized.as_ref().map(|n| i32::from(n.country_code)),
            national_number: normalized.as_ref().map(|n| n.national_number.to_string()),
            region: normalized.and_then(|n| n.region),
        })
    }

    /// Whether the phone or the email is in the gateway's do-not-contact registry (true when
    /// either is). The phone is compared as E.164, the email case-insensitively.
    async fn is_do_not_contact(
        &self,
        ctx: &Context<'_>,
        phone: Option<String>,
        email: Option<String>,
    ) -> Result<bool> {
        let settings = ctx.data::<QuerySettings>()?;
        let filter = registry_keys(phone, email, &settings.default_region)?;
        if filter.phone.is_none() && filter.email.is_none() {
            return Err(bad_user_input("give a phone or an email"));
        }
        let keys: Vec<RegistryKey> = filter
            .phone
            .map(RegistryKey::Phone)
            .into_iter()
            .chain(filter.email.map(RegistryKey::Email))
            .collect();
        let registered = match ctx.data_opt::<RequestRegistry>() {
            Some(loader) => consent::any_registered(loader, keys).await,
            None => {
                let gateway = ctx.data::<Arc<Gateway>>()?;
                consent::any_registered(&consent::for_request(gateway), keys).await
            }
        };
        registered.map_err(|e| super::errors::store_error(&e.to_string()))
    }

    /// The gateway's do-not-contact registry, oldest entry first: those holding the phone
    /// (E.164) and the email given, or every entry. `first` is at most 100.
    #[graphql(complexity = "5 + first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn do_not_contact_entries(
        &self,
        ctx: &Context<'_>,
        phone: Option<String>,
        email: Option<String>,
        #[graphql(default_with = "Some(20)")] first: Option<i64>,
        after: Option<String>,
    ) -> Result<DoNotContactEntryConnection> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let settings = ctx.data::<QuerySettings>()?;
        let first = first.unwrap_or(20);
        let first = u64::try_from(first)
            .ok()
            .filter(|first| *first <= MAX_FIRST as u64)
            .ok_or_else(|| {
                bad_user_input(format!("`first` must be 0 to {MAX_FIRST}, got {first}"))
            })?;
        let filter = registry_keys(phone, email, &settings.default_region)?;
        let after = match after {
            Some(cursor) => Some(consent::decode_cursor(&cursor).ok_or_else(|| {
                bad_user_input(format!(
                    "`after`: `{}` is not a doNotContactEntries cursor",
                    shown(&cursor)
                ))
            })?),
            None => None,
        };
        let want_total = ctx.look_ahead().field("totalCount").exists();
        let page = gateway
            .do_not_contact_entries(filter, first, after, want_total)
            .await
            .map_err(|why| super::errors::store_error(&why))?;
        Ok(DoNotContactEntryConnection {
            edges: page
                .entries
                .into_iter()
                .map(|(cursor, entry)| DoNotContactEntryEdge {
                    cursor,
                    node: entry.into(),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor: page.end_cursor,
            },
            total_count: page.total_count.unwrap_or_default(),
        })
    }

    /// Federation: resolves `Contact` entities by id through the same loader as `contact`. A
    /// lookup that fails nulls only its own representations, each with the coded error at
    /// `["_entities", index]` (async-graphql would fail the whole `_entities` list, so a
    /// router would lose every contact of its fetch to one provider's failure).
    #[graphql(entity)]
    async fn find_contact_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ContactObject>> {
        match self.contact(ctx, id.clone(), None).await {
            Ok(found) => Ok(found),
            Err(error) => {
                report_entity_error(ctx, &id, error);
                Ok(None)
            }
        }
    }
}

/// Request data: the `_entities` failures already reported, by field and id. A repeated
/// representation resolves once per occurrence; the first to fail reports for all of them.
#[derive(Default)]
pub struct ReportedEntities(Mutex<HashSet<(Pos, String)>>);

/// Adds `error` once for each `Contact` representation with this id, at its index.
fn report_entity_error(ctx: &Context<'_>, id: &str, error: Error) {
    if let Some(reported) = ctx.data_opt::<ReportedEntities>() {
        let mut reported = reported.0.lock().unwrap_or_else(|e| e.into_inner());
        if !reported.insert((ctx.item.pos, id.to_string())) {
            return;
        }
    }
    let error = ctx.set_error_path(error.into_server_error(ctx.item.pos));
    let indices = representation_indices(ctx, id);
    if indices.is_empty() {
        ctx.add_error(error);
        return;
    }
    for index in indices {
        let mut at_index = error.clone();
        at_index.path.push(PathSegment::Index(index));
        ctx.add_error(at_index);
    }
}

/// Where the `Contact` representations with this id are in `_entities(representations:)`.
fn representation_indices(ctx: &Context<'_>, id: &str) -> Vec<usize> {
    let typename = Value::String(ContactObject::type_name().into_owned());
    let id = Value::String(id.to_string());
    let arguments = ctx.field().arguments().unwrap_or_default();
    let Some((_, Value::List(representations))) = arguments
        .iter()
        .find(|(name, _)| name.as_str() == "representations")
    else {
        return Vec::new();
    };
    representations
        .iter()
        .enumerate()
        .filter(|(_, representation)| {
            matches!(representation, Value::Object(fields)
                if fields.get("__typename") == Some(&typename) && fields.get("id") == Some(&id))
        })
        .map(|(index, _)| index)
        .collect()
}

/// What `person` searches by: the email (lower-cased) and the phone (E.164, read in
/// `default_region`) given; at least one, each well-formed.
fn person_keys(
    email: Option<String>,
    phone: Option<String>,
    default_region: &str,
) -> Result<Vec<MatchKey>> {
    let given = registry_keys(phone, email, default_region)?;
    if let Some(email) = given
        .email
        .as_deref()
        .filter(|e| !crate::fields::valid_email(e))
    {
        return Err(bad_user_input(format!(
            "email: `{}` is not an email address",
            shown(email)
        )));
    }
    let keys: Vec<MatchKey> = given
        .email
        .as_deref()
        .map(MatchKey::email)
        .into_iter()
        .chain(given.phone.map(MatchKey::phone))
        .collect();
    if keys.is_empty() {
        return Err(bad_user_input(
            "person needs an email or a phone (or both) to find someone by",
        ));
    }
    Ok(keys)
}

/// A phone (as E.164, read in `default_region`) and an email (lower-cased), as the registry
/// keeps them; a phone that does not read is the caller's to fix.
fn registry_keys(
    phone: Option<String>,
    email: Option<String>,
    default_region: &str,
) -> Result<EntryFilter> {
    let trimmed = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let phone = match trimmed(phone) {
        Some(p) => Some(
            crate::fields::writable_phone(&p, phone::parse_region(default_region)).ok_or_else(
                || bad_user_input(format!("phone: `{}` is not a phone number", shown(&p))),
            )?,
        ),
        None => None,
    };
    Ok(EntryFilter {
        phone,
        email: trimmed(email).map(|e| e.to_lowercase()),
    })
}
