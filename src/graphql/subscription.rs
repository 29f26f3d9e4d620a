//! The `Subscription` root: `contactChanged`, over WebSocket (`graphql-transport-ws`) and
//! SSE (`server::subscriptions`). Exempt from `max_upstream_calls` and `request_timeout_ms`;
//! every subscription completes when the gateway shuts down.

use super::query::{ContactFilter, QuerySettings};
use super::types::ContactObject;
use crate::change::{Change, ChangeKind, ChangeOrigin};
use crate::contact::{Contact, Email, Phone, ProviderId};
use crate::gateway::filter::Filter;
use crate::gateway::Gateway;
use async_graphql::{Context, Object, Result, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use std::sync::Arc;

/// A change to a contact, or to the do-not-contact registry.
pub struct ContactChange(Arc<Change>);

#[Object]
impl ContactChange {
    async fn kind(&self) -> ChangeKind {
        self.0.kind
    }
    /// The contact's global id; for DO_NOT_CONTACT, `dnc:<registry entry id>`.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The contact as the provider answered the write, or as the poller listed it; null for
    /// DELETED and DO_NOT_CONTACT.
    async fn contact(&self) -> Option<ContactObject> {
        self.0
            .contact
            .as_ref()
            .map(|c| ContactObject(Arc::new(c.clone())))
    }
    /// When the gateway saw it: the provider's acknowledgement of a write, or the poll that
    /// found it.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// The contact's provider; null for DO_NOT_CONTACT.
    async fn provider(&self) -> Option<ProviderId> {
        self.0.provider
    }
    /// GATEWAY: a write through the gateway; POLLER: a change made at the provider directly.
    async fn origin(&self) -> ChangeOrigin {
        self.0.origin
    }
    /// DO_NOT_CONTACT only: the registry entry added or removed.
    async fn do_not_contact(&self) -> Option<DoNotContactChange> {
        self.0.do_not_contact.as_ref().map(|d| DoNotContactChange {
            phone: d.phone.clone(),
            email: d.email.clone(),
            reason: d.reason.clone(),
            listed: d.listed,
        })
    }
}

/// A registry entry added to or removed from the do-not-contact registry.
#[derive(SimpleObject)]
pub struct DoNotContactChange {
    /// E.164.
    pub phone: Option<String>,
    /// Lower-cased.
    pub email: Option<String>,
    pub reason: Option<String>,
    /// True: added (addToDoNotContact); false: removed (removeFromDoNotContact).
    pub listed: bool,
}

/// Which changes a subscription wants.
struct Wanted {
    providers: Option<Vec<ProviderId>>,
    filter: Filter,
}

impl Wanted {
    /// A contact's change: of a provider asked for, its contact matching the filter. A change
    /// without a contact (DELETED) cannot be checked against the filter and passes it. A
    /// registry change concerns every provider; its phone and email are checked against the
    /// filter as a contact's would be.
    fn wants(&self, change: &Change) -> bool {
        if let Some(entry) = &change.do_not_contact {
            let mut holder = Contact::new(ProviderId::Consuelo, "", serde_json::Value::Null);
            holder.phones.extend(entry.phone.iter().map(|e164| Phone {
                number: e164.clone(),
                e164: Some(e164.clone()),
                kind: None,
                primary: true,
            }));
            holder
                .emails
                .extend(entry.email.iter().cloned().map(Email::only));
            return self.filter.matches(&holder);
        }
        let provider = self
            .providers
            .as_ref()
            .is_none_or(|wanted| change.provider.is_some_and(|p| wanted.contains(&p)));
        provider
            && change
                .contact
                .as_ref()
                .is_none_or(|contact| self.filter.matches(contact))
    }
}

pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Every change from now on: writes through the gateway (create, update, upsert, delete,
    /// tags, import rows, do-not-contact add and remove) once acknowledged, and changes made at
    /// a provider directly where its poller runs (`poll_interval_secs`), from every replica.
    /// `providers` and `filter` narrow it as they narrow `contacts`; DELETED changes carry no
    /// contact and pass any filter. Completes when the gateway shuts down.
    async fn contact_changed(
        &self,
        ctx: &Context<'_>,
        providers: Option<Vec<ProviderId>>,
        filter: Option<ContactFilter>,
    ) -> Result<impl Stream<Item = ContactChange>> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let settings = ctx.data::<QuerySettings>()?;
        let wanted = Wanted {
            providers,
            filter: filter
                .unwrap_or_default()
                .validate(&settings.default_region)?,
        };
        Ok(gateway
            .changes
            .subscribe()
            .filter(move |change| std::future::ready(wanted.wants(change)))
            .map(ContactChange))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::DoNotContactChange as Entry;

    fn ada(provider: ProviderId) -> Contact {
        let mut c = Contact::new(provider, "c1", serde_json::Value::Null);
        c.emails.push(Email::only("ada@example.com".into()));
        c
    }

    #[test]
    fn providers_and_filters_narrow_changes() {
        let now = Utc::now();
        let updated = Change::of_contact(
            ChangeKind::Updated,
            ada(ProviderId::Consuelo),
            ChangeOrigin::Gateway,
            now,
        );
        let all = Wanted {
            providers: None,
            filter: Filter::default(),
        };
        assert!(all.wants(&updated));
        let magicblocks = Wanted {
            providers: Some(vec![ProviderId::Magicblocks]),
            filter: Filter::default(),
        };
        assert!(!magicblocks.wants(&updated));
        let by_email = |email: &str| Wanted {
            providers: None,
            filter: Filter {
                email: Some(email.into()),
                ..Filter::default()
            },
        };
        assert!(by_email("ada@example.com").wants(&updated));
        assert!(!by_email("bob@example.com").wants(&updated));
        let deleted = Change::deleted(
            &crate::contact::GlobalId::new(ProviderId::Consuelo, "c1"),
            ChangeOrigin::Poller,
            now,
        );
        assert!(
            by_email("bob@example.com").wants(&deleted),
            "nothing to check"
        );
        assert!(!magicblocks.wants(&deleted));
        let listed = Change::do_not_contact(
            "e1",
            Entry {
                phone: None,
                email: Some("ada@example.com".into()),
                reason: None,
                listed: true,
            },
            now,
        );
        assert!(by_email("ada@example.com").wants(&listed));
        assert!(!by_email("bob@example.com").wants(&listed));
        assert!(
            magicblocks.wants(&listed),
            "the registry spans every provider"
        );
    }
}
