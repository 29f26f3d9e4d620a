//! A change to a contact (or to the do-not-contact registry), as subscribers and webhooks see
//! it: plain Rust, no HTTP. `gateway::changes` publishes them; this is what travels between
//! replicas through the store (as JSON).

use crate::contact::{Contact, GlobalId, ProviderId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    /// A contact was created.
    Created,
    /// A contact's fields changed (tags included).
    Updated,
    /// A contact was deleted (the change carries no contact).
    Deleted,
    /// A phone and/or email was added to or removed from the gateway's do-not-contact
    /// registry (`doNotContact` says which and how).
    DoNotContact,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 4] = [
        ChangeKind::Created,
        ChangeKind::Updated,
        ChangeKind::Deleted,
        ChangeKind::DoNotContact,
    ];

    /// Its GraphQL name (also how `[[webhooks]] events` names it).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "CREATED",
            ChangeKind::Updated => "UPDATED",
            ChangeKind::Deleted => "DELETED",
            ChangeKind::DoNotContact => "DO_NOT_CONTACT",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChangeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChangeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "`{}` is not a change kind; known: {}",
                    crate::contact::shown(s),
                    known.join(", ")
                )
            })
    }
}

/// Who saw the change happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeOrigin {
    /// A write through the gateway, once the provider acknowledged it.
    Gateway,
    /// A provider's poller (`poll_interval_secs`): a change made at the provider directly,
    /// found by comparing a full listing with the last one.
    Poller,
}

/// A do-not-contact registry change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoNotContactChange {
    /// E.164.
    pub phone: Option<String>,
    /// Lower-cased.
    pub email: Option<String>,
    pub reason: Option<String>,
    /// True: added to the registry; false: removed from it.
    pub listed: bool,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// The contact's global id; for `DoNotContact`, `dnc:<registry entry id>`.
    pub id: String,
    /// The contact's provider (none for `DoNotContact`).
    pub provider: Option<ProviderId>,
    /// The contact as the provider answered the write or listed it; none for `Deleted` and
    /// `DoNotContact`.
    pub contact: Option<Contact>,
    pub do_not_contact: Option<DoNotContactChange>,
    /// When the gateway saw it (the provider's acknowledgement, or the poll).
    pub at: DateTime<Utc>,
    pub origin: ChangeOrigin,
}

impl Change {
    /// A contact created or updated.
    pub fn of_contact(
        kind: ChangeKind,
        contact: Contact,
        origin: ChangeOrigin,
        at: DateTime<Utc>,
    ) -> Change {
        Change {
            kind,
            id: contact.global_id().to_string(),
            provider: Some(contact.provider),
            contact: Some(contact),
            do_not_contact: None,
            at,
            origin,
        }
    }

    /// A contact deleted.
    pub fn deleted(id: &GlobalId, origin: ChangeOrigin, at: DateTime<Utc>) -> Change {
        Change {
            kind: ChangeKind::Deleted,
            id: id.to_string(),
            provider: Some(id.provider),
            contact: None,
            do_not_contact: None,
            at,
            origin,
        }
    }

    /// A registry entry added (`listed`) or removed.
    pub fn do_not_contact(entry_id: &str, change: DoNotContactChange, at: DateTime<Utc>) -> Change {
        Change {
            kind: ChangeKind::DoNotContact,
            id: format!("dnc:{entry_id}"),
            provider: None,
            contact: None,
            do_not_contact: Some(change),
            at,
            origin: ChangeOrigin::Gateway,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_as_their_graphql_names() {
        for kind in ChangeKind::ALL {
            assert_eq!(kind.as_str().parse::<ChangeKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert!("created".parse::<ChangeKind>().is_err());
    }

    #[test]
    fn a_change_travels_as_json_and_comes_back_whole() {
        let mut contact = Contact::new(
            ProviderId::Consuelo,
            "c1",
            serde_json::json!({"id": "c1", "firstName": "Ada"}),
        );
        contact.name = crate::contact::PersonName::from_parts(Some("Ada"), None, None);
        contact.updated_at = Some(Utc::now());
        let change = Change::of_contact(
            ChangeKind::Updated,
            contact,
            ChangeOrigin::Poller,
            Utc::now(),
        );
        let text = serde_json::to_string(&change).unwrap();
        let back: Change = serde_json::from_str(&text).unwrap();
        assert_eq!(back, change);
        assert_eq!(back.id, "consuelo:c1");
    }
}
