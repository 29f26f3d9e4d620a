//! `ContactFilter` evaluated in the gateway: every contact returned satisfies every field
//! given, whatever the provider's own search matched.

use crate::contact::Contact;
use crate::phone;
use crate::providers::{Capabilities, ListQuery};

/// A validated filter: the email lower-cased, the phone in E.164, tags and company trimmed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    pub search: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub tags: Vec<String>,
    pub company: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// What is pushed down to a provider (it may narrow first; we re-check).
    pub fn to_list_query(&self) -> ListQuery {
        ListQuery {
            search: self.search.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            tags: self.tags.clone(),
            company: self.company.clone(),
        }
    }

    /// False when the provider cannot hold a field filtered on, so none of its contacts match.
    pub fn can_match(&self, capabilities: &Capabilities) -> bool {
        (self.email.is_none() || capabilities.holds_email)
            && (self.tags.is_empty() || capabilities.holds_tags)
            && (self.company.is_none() || capabilities.holds_company)
    }

    pub fn matches(&self, contact: &Contact) -> bool {
        let email = self.email.as_ref().is_none_or(|email| {
            contact
                .emails
                .iter()
                .any(|e| e.address.eq_ignore_ascii_case(email))
        });
        let phone = self.phone.as_ref().is_none_or(|e164| {
            contact
                .phones
                .iter()
                .any(|p| p.e164.as_deref() == Some(e164.as_str()))
        });
        // Tag names are exact, as the providers' own tag filters are (so pushing one down
        // never loses a contact).
        let tags = self
            .tags
            .iter()
            .all(|wanted| contact.tags.iter().any(|t| t.trim() == wanted));
        let company = self.company.as_ref().is_none_or(|company| {
            contact
                .company
                .as_deref()
                .is_some_and(|c| c.trim().to_lowercase() == company.to_lowercase())
        });
        let search = self
            .search
            .as_ref()
            .is_none_or(|search| matches_search(contact, search));
        email && phone && tags && company && search
    }
}

/// A case-insensitive substring of the display name, an email or the company, or (for a
/// search with digits) of a phone's digits.
fn matches_search(contact: &Contact, search: &str) -> bool {
    let needle = search.to_lowercase();
    let contains = |hay: &str| hay.to_lowercase().contains(&needle);
    if contains(&contact.display_name())
        || contact.emails.iter().any(|e| contains(&e.address))
        || contact.company.as_deref().is_some_and(contains)
    {
        return true;
    }
    let digits = phone::digits(search);
    // Only when the search is phone-like: "Anne 2" must not match every phone with a 2.
    let phone_like = !digits.is_empty()
        && search
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    phone_like
        && contact.phones.iter().any(|p| {
            phone::digits(&p.number).contains(&digits)
                || p.e164
                    .as_deref()
                    .is_some_and(|e| phone::digits(e).contains(&digits))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::{Email, PersonName, Phone, ProviderId};
    use serde_json::Value;

    fn ada() -> Contact {
        let mut c = Contact::new(ProviderId::Consuelo, "c1", Value::Null);
        c.name = PersonName::from_parts(Some("Ada"), None, Some("Lovelace"));
        c.emails.push(Email {
            address: "Ada@Example.com".into(),
            kind: None,
            primary: true,
        });
        c.phones.push(Phone {
            number: "(415) 555-1234".into(),
            e164: Some("+14155551234".into()),
            kind: None,
            primary: true,
        });
        c.company = Some("Analytical Engines".into());
        c.tags = vec!["VIP".into(), "beta".into()];
        c
    }

    fn filter() -> Filter {
        Filter::default()
    }

    #[test]
    fn each_field_matches_and_misses() {
        let c = ada();
        assert!(filter().matches(&c));
        let yes = [
            Filter {
                email: Some("ada@example.com".into()),
                ..filter()
            },
            Filter {
                phone: Some("+14155551234".into()),
                ..filter()
            },
            Filter {
                tags: vec!["VIP".into(), "beta".into()],
                ..filter()
            },
            Filter {
                company: Some("analytical engines".into()),
                ..filter()
            },
            Filter {
                search: Some("lovel".into()),
                ..filter()
            },
            Filter {
                search: Some("example.COM".into()),
                ..filter()
            },
            Filter {
                search: Some("555-12".into()),
                ..filter()
            },
            Filter {
                search: Some("engines".into()),
                ..filter()
            },
        ];
        for f in yes {
            assert!(f.matches(&c), "{f:?} should match");
        }
        let no = [
            Filter {
                email: Some("ada@example.org".into()),
                ..filter()
            },
            Filter {
                phone: Some("+14155550000".into()),
                ..filter()
            },
            Filter {
                tags: vec!["VIP".into(), "gold".into()],
                ..filter()
            },
            Filter {
                tags: vec!["vip".into()],
                ..filter()
            },
            Filter {
                company: Some("analytical".into()),
                ..filter()
            },
            Filter {
                search: Some("grace".into()),
                ..filter()
            },
            Filter {
                search: Some("Ada 9".into()),
                ..filter()
            },
        ];
        for f in no {
            assert!(!f.matches(&c), "{f:?} should not match");
        }
    }
}
