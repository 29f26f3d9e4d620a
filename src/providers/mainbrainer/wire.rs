//! Mainbrainer's documented JSON (mainbrainer.txt and the OpenAPI page NOTES §5 cites): the
//! upsert body the adapter sends, the upsert answer, and the contact record as the upsert
//! writes it (there is no read endpoint: the adapter reads back what it sent, plus the id).
//! Answers and records are read with keys in any casing (`AnyCase`). No field of the record
//! carries a credential (the token travels only in the `Authorization` header; the `POST /token`
//! answer is never requested), so `raw` keeps it whole.

use crate::providers::wire;
use serde::de::{DeserializeOwned, Deserializer, Error as _, IgnoredAny, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /contacts/insertupdate` (mainbrainer.txt), with the OpenAPI's camelCase keys (NOTES
/// 5.7.1): only the keys given are sent; by the document's matching rules, an omitted field
/// keeps its stored value.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertBody {
    /// int64: the record to update (a new one is created when none has it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<i64>,
    /// uuid: without it a new contact goes to "All contacts".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// int32, a dialing code (`47` = Norway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_country_code: Option<u16>,
    /// int64, the national number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_number: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_opt_in: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_opt_in: Option<bool>,
    /// `propertyfields` in the seed; left out when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub property_fields: Vec<Property>,
}

/// `{propertyName, propertyValue}`: a property named, not by id.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    pub property_name: String,
    /// Always sent: an explicit `null` clears the property (the OpenAPI types it
    /// `string|null`).
    pub property_value: Option<String>,
}

/// The upsert answer: mainbrainer.txt's `{status, message, data}` (read with `AnyCase`).
#[derive(Debug, Default, Deserialize)]
pub struct UpsertAnswer {
    #[serde(default, deserialize_with = "wire::lenient")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "wire::lenient")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "wire::lenient")]
    pub data: Option<AnyCase<UpsertData>>,
}

impl UpsertAnswer {
    /// The answer's message when its `status` says something other than `Success` (NOTES
    /// 5.6: a 2xx is a success only when the body says so; an answer without a status is not
    /// a failure).
    pub fn failure(&self) -> Option<&str> {
        let status = self.status.as_deref()?;
        if status.eq_ignore_ascii_case("success") {
            return None;
        }
        Some(self.message.as_deref().unwrap_or("no message"))
    }
}

/// The answer's `data`: mainbrainer.txt `{ContactId, InvalidProperties, InvalidContactIds}`,
/// the OpenAPI `{contactId, invalidPropertiesList, invalidContactIdList, balance, …}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertData {
    /// A string in both documents; a number is read as its digits.
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub contact_id: Option<String>,
    /// mainbrainer.txt's spelling…
    #[serde(default, deserialize_with = "wire::lenient")]
    pub invalid_properties: Option<Vec<InvalidProperty>>,
    /// …and the OpenAPI's, read when the first is absent.
    #[serde(default, deserialize_with = "wire::lenient")]
    pub invalid_properties_list: Option<Vec<InvalidProperty>>,
}

impl UpsertData {
    /// The properties Mainbrainer did not store.
    pub fn invalid(self) -> Vec<InvalidProperty> {
        self.invalid_properties
            .or(self.invalid_properties_list)
            .unwrap_or_default()
    }
}

/// One property Mainbrainer did not store: a name, or the OpenAPI `{propertyId, propertyName,
/// propertyValue}`; anything else names no property.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum InvalidProperty {
    Name(String),
    Item(AnyCase<PropertyItem>),
    Unnamed(IgnoredAny),
}

impl InvalidProperty {
    /// The property's name, trimmed and lower-cased, when it gives one.
    pub fn name(&self) -> Option<String> {
        let name = match self {
            InvalidProperty::Name(name) => Some(name.as_str()),
            InvalidProperty::Item(AnyCase(item)) => item.property_name.as_deref(),
            InvalidProperty::Unnamed(_) => None,
        };
        name.map(|n| n.trim().to_lowercase())
    }
}

/// A contact record as the upsert writes it (mainbrainer.txt's request example), read with
/// `AnyCase`: the seed writes `propertyfields`, the answer `ContactId`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactRecord {
    /// An integer in requests, a string in answers.
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub contact_id: Option<String>,
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub list_id: Option<String>,
    /// The lists the contact was added to, as the gateway's ledger keeps them (each write's
    /// `listId`); items that are not strings are skipped.
    #[serde(default, deserialize_with = "wire::items")]
    pub list_ids: Vec<String>,
    #[serde(default, deserialize_with = "wire::text")]
    pub email: Option<String>,
    /// A dialing code (int32).
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub mobile_country_code: Option<String>,
    /// The national number (int64).
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub mobile_number: Option<String>,
    #[serde(default, deserialize_with = "wire::flag")]
    pub mobile_opt_in: Option<bool>,
    #[serde(default, deserialize_with = "wire::flag")]
    pub email_opt_in: Option<bool>,
    /// Items that are not objects are skipped.
    #[serde(default, deserialize_with = "wire::items")]
    pub property_fields: Vec<AnyCase<PropertyItem>>,
}

impl ContactRecord {
    /// The record a JSON value holds, keys in any casing; only an object is one.
    pub fn read(raw: &Value) -> Option<ContactRecord> {
        AnyCase::<ContactRecord>::deserialize(raw).ok().map(|r| r.0)
    }
}

/// A `propertyFields` item: `{propertyId, propertyName, propertyValue}` (seed: `propertyid`,
/// `propertyname`, `propertyvalue`). A property given only by id has no name here.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyItem {
    #[serde(default, deserialize_with = "wire::text")]
    pub property_name: Option<String>,
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub property_value: Option<String>,
}

/// `T` read from a JSON object whose keys are matched ignoring ASCII case, a key spelled
/// exactly as `T` names its field winning over other casings (mainbrainer.txt writes
/// `ContactId`, `propertyfields`; its OpenAPI `contactId`, `propertyFields`; NOTES 5.7.1-2).
/// Anything but an object fails (a derived struct would read an array positionally).
#[derive(Debug, Default)]
pub struct AnyCase<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for AnyCase<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        T::deserialize(Spelled(value))
            .map(AnyCase)
            .map_err(D::Error::custom)
    }
}

/// A JSON value that presents an object to a struct with its keys spelled as the struct's
/// fields are.
struct Spelled(Value);

impl<'de> Deserializer<'de> for Spelled {
    type Error = serde_json::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let Value::Object(object) = self.0 else {
            return Err(serde_json::Error::custom(format!("{name}: not an object")));
        };
        let spelled: Map<String, Value> = fields
            .iter()
            .filter_map(|f| field(&object, f).map(|v| (f.to_string(), v.clone())))
            .collect();
        Value::Object(spelled).deserialize_struct(name, fields, visitor)
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The value under `key`: that spelling, else the first key equal to it ignoring ASCII case.
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(body: Value) -> UpsertAnswer {
        serde_json::from_value::<AnyCase<UpsertAnswer>>(body)
            .map(|a| a.0)
            .unwrap_or_default()
    }

    #[test]
    fn the_documented_answer_reads_in_either_casing() {
        // mainbrainer.txt's response (its trailing comma removed: the sample is not valid JSON).
        let seed = answer(json!({
            "status": "Success",
            "message": "Contact added/updated successfully",
            "data": { "ContactId": "1329318", "InvalidProperties": [], "InvalidContactIds": [] }
        }));
        assert_eq!(seed.failure(), None);
        let data = seed.data.expect("data").0;
        assert_eq!(data.contact_id.as_deref(), Some("1329318"));
        let openapi = answer(json!({
            "Status": "success",
            "data": { "contactId": 1329318, "invalidPropertiesList": [{ "propertyName": "Tier" }] }
        }));
        assert_eq!(openapi.failure(), None);
        let data = openapi.data.expect("data").0;
        assert_eq!(data.contact_id.as_deref(), Some("1329318"));
        let names: Vec<_> = data.invalid().iter().map(InvalidProperty::name).collect();
        assert_eq!(names, [Some("tier".to_string())]);
    }

    #[test]
    fn a_status_other_than_success_is_a_failure_with_its_message() {
        let error = answer(json!({ "status": "Error", "message": "No properties", "data": null }));
        assert_eq!(error.failure(), Some("No properties"));
        assert_eq!(
            answer(json!({ "STATUS": "Error" })).failure(),
            Some("no message")
        );
        assert_eq!(answer(json!({ "status": 1, "data": {} })).failure(), None);
        assert_eq!(answer(json!("Success")).failure(), None);
    }

    #[test]
    fn the_exact_spelling_wins_over_another_casing() {
        let data: AnyCase<UpsertData> =
            serde_json::from_value(json!({ "ContactId": "1", "contactId": "2" })).unwrap();
        assert_eq!(data.0.contact_id.as_deref(), Some("2"));
        let data: AnyCase<UpsertData> =
            serde_json::from_value(json!({ "CONTACTID": "3" })).unwrap();
        assert_eq!(data.0.contact_id.as_deref(), Some("3"));
        assert!(serde_json::from_value::<AnyCase<UpsertData>>(json!(["1"])).is_err());
    }

    #[test]
    fn invalid_properties_name_a_property_or_nothing() {
        let data: AnyCase<UpsertData> = serde_json::from_value(json!({
            "InvalidProperties": [" City ", { "PropertyName": "Tier" }, { "propertyId": "p9" }, 3]
        }))
        .unwrap();
        let names: Vec<_> = data.0.invalid().iter().map(InvalidProperty::name).collect();
        assert_eq!(
            names,
            [
                Some("city".to_string()),
                Some("tier".to_string()),
                None,
                None
            ]
        );
    }

    #[test]
    fn a_property_clears_with_an_explicit_null_and_empty_lists_are_left_out() {
        let body = UpsertBody {
            contact_id: Some(7),
            property_fields: vec![Property {
                property_name: "lastname".into(),
                property_value: None,
            }],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({ "contactId": 7, "propertyFields": [ { "propertyName": "lastname", "propertyValue": null } ] })
        );
        assert_eq!(
            serde_json::to_value(UpsertBody::default()).unwrap(),
            json!({})
        );
    }
}
