//! What the gateway wrote to Mainbrainer, kept in its store (`store::ledger`) because
//! Mainbrainer documents no read endpoint: each record as the gateway's upserts left it, and
//! each upsert's body and answer. `get` and `list` serve these copies, marked
//! `ContactSource::GatewayLedger`. A record appears once the gateway has written it, whoever
//! created it at Mainbrainer, and holds only the fields the gateway sent (minus the properties
//! Mainbrainer reported invalid): changes made in Mainbrainer itself are not seen.

use super::mapping::to_contact;
use super::wire::UpsertBody;
use crate::contact::{Contact, ContactSource, ProviderId};
use crate::providers::{ListChunk, ProviderError};
use crate::store::ledger::{LedgerRecord, LedgerWrite};
use crate::store::{Store, StoreError};
use chrono::{TimeZone, Utc};
use phonenumber::country::Id as Region;
use serde_json::{json, Value};

const PROVIDER: ProviderId = ProviderId::Mainbrainer;

/// Why `get` cannot answer for an id the ledger does not hold.
pub const NOT_WRITTEN: &str = "reading a contact the gateway did not write (Mainbrainer \
    documents no read endpoint: the gateway serves its ledger of what it wrote there)";

/// The gateway's ledger of its Mainbrainer writes.
#[derive(Clone)]
pub struct Ledger {
    store: Store,
}

impl Ledger {
    pub fn new(store: Store) -> Self {
        Ledger { store }
    }

    /// Records an upsert Mainbrainer answered for `contact_id`: `sent` as sent, `answered` as
    /// answered, and the record merged with `stored` (what it kept of `sent`). Answers the
    /// contact as the ledger now holds it.
    pub async fn record(
        &self,
        operation: &str,
        contact_id: &str,
        sent: &UpsertBody,
        answered: &Value,
        stored: &UpsertBody,
        region: Option<Region>,
    ) -> Result<Contact, ProviderError> {
        let write = LedgerWrite::now(operation, json!(sent), answered.clone());
        let held = self
            .store
            .ledger_write(PROVIDER, contact_id, &write, |previous| {
                merged(previous, contact_id, stored)
            })
            .await
            .map_err(|e| not_recorded(contact_id, &e))?;
        read(held, region)
    }

    /// Marks `contact_id` gone: an update by its id made Mainbrainer create another record
    /// (mainbrainer.txt: "In case no record exists with the specified details, a new record
    /// will be created"), so it no longer exists there.
    pub async fn forget(
        &self,
        contact_id: &str,
        sent: &UpsertBody,
        answered: &Value,
    ) -> Result<(), ProviderError> {
        let write = LedgerWrite::now("update", json!(sent), answered.clone());
        self.store
            .ledger_tombstone(PROVIDER, contact_id, &write)
            .await
            .map_err(|e| not_recorded(contact_id, &e))?;
        Ok(())
    }

    /// The ledger's copy of `native_id`: `None` when the gateway learned it is gone, and
    /// `Unsupported` when the gateway never wrote it (it may exist; nothing can tell).
    pub async fn get(
        &self,
        native_id: &str,
        region: Option<Region>,
    ) -> Result<Option<Contact>, ProviderError> {
        // Ids are integers: "007" is 7.
        let id = native_id
            .trim()
            .parse::<i64>()
            .map_or(native_id.to_string(), |n| n.to_string());
        match self.store.ledger_record(PROVIDER, &id).await {
            Ok(Some(held)) if held.deleted_ms.is_some() => Ok(None),
            Ok(Some(held)) => read(held, region).map(Some),
            Ok(None) => Err(ProviderError::Unsupported {
                provider: PROVIDER,
                operation: NOT_WRITTEN,
            }),
            Err(e) => Err(unreadable(&e)),
        }
    }

    /// Records `offset .. offset + limit` of the ledger, in the order the gateway first wrote
    /// them; the total is the ledger's count.
    pub async fn list(
        &self,
        offset: u64,
        limit: u32,
        region: Option<Region>,
    ) -> Result<ListChunk, ProviderError> {
        // One more than asked says whether any follow.
        let mut records = self
            .store
            .ledger_records(PROVIDER, offset, limit.saturating_add(1))
            .await
            .map_err(|e| unreadable(&e))?;
        let exhausted = records.len() <= limit as usize;
        records.truncate(limit as usize);
        let total = self
            .store
            .ledger_count(PROVIDER)
            .await
            .map_err(|e| unreadable(&e))?;
        let contacts = records
            .into_iter()
            .map(|held| read(held, region))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ListChunk {
            contacts,
            exhausted,
            total: Some(total),
        })
    }
}

/// A held record as a contact: from the ledger, last written then.
fn read(held: LedgerRecord, region: Option<Region>) -> Result<Contact, ProviderError> {
    let mut contact = to_contact(held.record, region)?;
    contact.source = ContactSource::GatewayLedger;
    contact.updated_at = Utc.timestamp_millis_opt(held.updated_ms).single();
    Ok(contact)
}

/// The record after an upsert, as Mainbrainer applies one (mainbrainer.txt, NOTES 5.5):
/// fields the body gives replace the held ones, omitted ones keep their values, its list is
/// added to the lists the contact is in (`listIds`), and properties are replaced by name (a
/// `null` value clears one; it is kept, as Mainbrainer keeps it).
pub fn merged(previous: Option<&Value>, contact_id: &str, stored: &UpsertBody) -> Value {
    let mut record = previous
        .filter(|p| p.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    record["contactId"] = contact_id
        .parse::<i64>()
        .map_or(json!(contact_id), |n| json!(n));
    let body = json!(stored);
    for key in [
        "email",
        "mobileCountryCode",
        "mobileNumber",
        "mobileOptIn",
        "emailOptIn",
    ] {
        if let Some(value) = body.get(key) {
            record[key] = value.clone();
        }
    }
    if let Some(list) = &stored.list_id {
        let lists = record["listIds"].as_array().cloned().unwrap_or_default();
        if !lists.iter().any(|l| l.as_str() == Some(list)) {
            let mut lists = lists;
            lists.push(json!(list));
            record["listIds"] = json!(lists);
        }
    }
    if !stored.property_fields.is_empty() {
        let mut properties = record["propertyFields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for property in &stored.property_fields {
            let name = property.property_name.trim();
            let item = json!(property);
            match properties.iter_mut().find(|p| {
                p["propertyName"]
                    .as_str()
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
            }) {
                Some(held) => *held = item,
                None => properties.push(item),
            }
        }
        record["propertyFields"] = json!(properties);
    }
    record
}

/// Mainbrainer took the write but the ledger could not record it: the write happened, so the
/// caller is told (a do-not-contact propagation stays pending and is sent again).
fn not_recorded(contact_id: &str, error: &StoreError) -> ProviderError {
    tracing::error!(contact = %contact_id, error = %error, "the Mainbrainer ledger did not record a write");
    ProviderError::Unavailable {
        provider: PROVIDER,
        reason: format!(
            "Mainbrainer stored contact {contact_id}, but the gateway's ledger could not record \
             it ({error}), so reads will not show it as written"
        ),
        retryable: false,
        may_have_been_applied: true,
    }
}

fn unreadable(error: &StoreError) -> ProviderError {
    ProviderError::Unavailable {
        provider: PROVIDER,
        reason: format!("the gateway's ledger of Mainbrainer contacts cannot be read ({error})"),
        retryable: true,
        may_have_been_applied: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::mainbrainer::wire::Property;

    fn property(name: &str, value: Option<&str>) -> Property {
        Property {
            property_name: name.into(),
            property_value: value.map(str::to_string),
        }
    }

    #[test]
    fn an_upsert_merges_as_mainbrainer_applies_it() {
        let create = UpsertBody {
            list_id: Some("l1".into()),
            email: Some("ann@acme.io".into()),
            mobile_country_code: Some(47),
            mobile_number: Some(90812501),
            mobile_opt_in: Some(true),
            email_opt_in: Some(false),
            property_fields: vec![
                property("firstname", Some("Ann")),
                property("city", Some("Oslo")),
            ],
            ..Default::default()
        };
        let first = merged(None, "1329318", &create);
        assert_eq!(
            first,
            json!({
                "contactId": 1329318, "listIds": ["l1"], "email": "ann@acme.io",
                "mobileCountryCode": 47, "mobileNumber": 90812501,
                "mobileOptIn": true, "emailOptIn": false,
                "propertyFields": [
                    { "propertyName": "firstname", "propertyValue": "Ann" },
                    { "propertyName": "city", "propertyValue": "Oslo" }
                ]
            })
        );
        // An update by id: only what it gives changes; a list is added, a property replaced
        // by name (any casing), a null value kept as the clearing it is.
        let update = UpsertBody {
            contact_id: Some(1329318),
            list_id: Some("l2".into()),
            mobile_opt_in: Some(false),
            property_fields: vec![property("City", None), property("company", Some("Acme"))],
            ..Default::default()
        };
        let second = merged(Some(&first), "1329318", &update);
        assert_eq!(second["listIds"], json!(["l1", "l2"]));
        assert_eq!(second["mobileOptIn"], false);
        assert_eq!(second["email"], "ann@acme.io", "kept");
        assert_eq!(second["emailOptIn"], false, "kept");
        assert_eq!(
            second["propertyFields"],
            json!([
                { "propertyName": "firstname", "propertyValue": "Ann" },
                { "propertyName": "City", "propertyValue": null },
                { "propertyName": "company", "propertyValue": "Acme" }
            ])
        );
        let contact = to_contact(second.clone(), None).unwrap();
        assert_eq!(contact.native_id, "1329318");
        assert_eq!(contact.name.first.as_deref(), Some("Ann"));
        assert_eq!(contact.company.as_deref(), Some("Acme"));
        let lists: Vec<&str> = contact.groups.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(lists, ["l1", "l2"]);
    }
}
