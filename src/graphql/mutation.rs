//! The `Mutation` root: every input is validated before any upstream call; what the caller
//! can fix comes back as `userErrors`, provider failures as GraphQL errors with their code.

use super::errors::write_error;
use super::types::{ContactObject, DoNotContactEntry, DoNotContactResult, OneByOne};
use crate::contact::{GlobalId, MatchField, ProviderId};
use crate::fields::kind::{self, EmailDraft, PhoneDraft};
use crate::fields::Kind;
use crate::gateway::validate;
use crate::gateway::writes::{Registration, WriteError, Written};
use crate::gateway::Gateway;
use crate::write::{ContactDraft, Patch, UserError, UserErrorCode};
use async_graphql::{
    Context, Enum, InputObject, InputType, Json, MaybeUndefined, Object, Result, SimpleObject, ID,
};
use std::sync::Arc;

#[derive(InputObject, Clone)]
pub struct EmailInput {
    pub address: String,
    /// A label such as "work" or "home", where the provider keeps one.
    #[graphql(name = "type")]
    pub kind: Option<String>,
    pub primary: Option<bool>,
}

#[derive(InputObject, Clone)]
pub struct PhoneInput {
    /// Any format; national numbers are read in the provider's `default_region`.
    pub number: String,
    #[graphql(name = "type")]
    pub kind: Option<String>,
    pub primary: Option<bool>,
}

/// How a GraphQL input value becomes the draft the table's kind validates.
pub trait FromInput: Kind {
    type Input: InputType;
    fn draft(input: Self::Input) -> Self::Draft;
}

impl<const MAX: usize> FromInput for kind::Text<MAX> {
    type Input = String;
    fn draft(input: String) -> String {
        input
    }
}

impl FromInput for kind::Emails {
    type Input = Vec<EmailInput>;
    fn draft(input: Vec<EmailInput>) -> Vec<EmailDraft> {
        input
            .into_iter()
            .map(|e| EmailDraft {
                address: e.address,
                kind: e.kind,
                primary: e.primary,
            })
            .collect()
    }
}

impl FromInput for kind::Phones {
    type Input = Vec<PhoneInput>;
    fn draft(input: Vec<PhoneInput>) -> Vec<PhoneDraft> {
        input
            .into_iter()
            .map(|p| PhoneDraft {
                number: p.number,
                kind: p.kind,
                primary: p.primary,
            })
            .collect()
    }
}

impl FromInput for kind::Tags {
    type Input = Vec<String>;
    fn draft(input: Vec<String>) -> Vec<String> {
        input
    }
}

impl FromInput for kind::GroupIds {
    type Input = Vec<ID>;
    fn draft(input: Vec<ID>) -> Vec<String> {
        input.into_iter().map(|id| id.0).collect()
    }
}

impl FromInput for kind::CustomFields {
    type Input = Json<serde_json::Value>;
    fn draft(input: Json<serde_json::Value>) -> serde_json::Value {
        input.0
    }
}

impl FromInput for kind::Consent {
    type Input = bool;
    fn draft(input: bool) -> bool {
        input
    }
}

impl FromInput for kind::Flag {
    type Input = bool;
    fn draft(input: bool) -> bool {
        input
    }
}

/// The create and update inputs, one field per row of the table in `fields.rs`.
macro_rules! contact_inputs {
    ($(
        $field:ident $variant:ident : $kind:ty, $input:literal,
            csv $csv:literal [$($alias:literal),*], read [$($read:expr)?],
            filter [$($filter:literal),*], $doc:literal;
    )*) => {
        /// A new contact. Fields the chosen provider cannot hold are refused with a userError
        /// (`FIELD_NOT_SUPPORTED`), never dropped.
        #[derive(InputObject)]
        pub struct CreateContactInput {
            pub provider: ProviderId,
            $(
                #[doc = $doc]
                #[graphql(name = $input)]
                pub $field: Option<<$kind as FromInput>::Input>,
            )*
        }

        /// A patch: an absent field keeps its value, an explicit `null` clears it (where the
        /// provider can clear it). Lists are replaced whole; `customFields` merges key by key
        /// (`null` removes).
        #[derive(InputObject)]
        pub struct UpdateContactInput {
            $(
                #[doc = $doc]
                #[graphql(name = $input)]
                pub $field: MaybeUndefined<<$kind as FromInput>::Input>,
            )*
        }

        impl CreateContactInput {
            /// The fields given, as a draft to validate.
            fn draft(self) -> ContactDraft {
                ContactDraft {
                    $($field: self.$field.map_or(Patch::Keep, |v| Patch::Set(<$kind as FromInput>::draft(v))),)*
                }
            }
        }

        impl UpdateContactInput {
            /// The patch as given, as a draft to validate.
            fn draft(self) -> ContactDraft {
                ContactDraft {
                    $($field: match self.$field {
                        MaybeUndefined::Undefined => Patch::Keep,
                        MaybeUndefined::Null => Patch::Clear,
                        MaybeUndefined::Value(v) => Patch::Set(<$kind as FromInput>::draft(v)),
                    },)*
                }
            }
        }
    };
}

crate::writable_fields!(contact_inputs);

/// A contact to update when one matches (by email and/or phone), else to create.
#[derive(InputObject)]
pub struct UpsertContactInput {
    /// The contact's fields, as `createContact` takes them.
    #[graphql(flatten)]
    pub contact: CreateContactInput,
    /// What a match is found by; default both (a contact matching either; one matching both
    /// wins). Mainbrainer matches by its own documented rules.
    pub match_by: Option<Vec<MatchField>>,
}

#[derive(InputObject)]
pub struct DoNotContactInput {
    /// Any format; normalized to E.164 first (national numbers in the gateway's region).
    pub phone: Option<String>,
    /// Compared case-insensitively.
    pub email: Option<String>,
    /// Kept with a new entry (an existing entry keeps its own).
    pub reason: Option<String>,
    /// Default: every enabled provider.
    pub providers: Option<Vec<ProviderId>>,
}

#[derive(SimpleObject, Default)]
pub struct ContactPayload {
    pub contact: Option<ContactObject>,
    pub user_errors: Vec<UserError>,
    /// The write happened, but the provider's answer does not show these values as given
    /// (code FIELD_NOT_STORED; e.g. MaiAgent keeps a phone's national digits only), or the
    /// contact could not be read back after it (READ_BACK_FAILED; `contact` is null).
    pub warnings: Vec<UserError>,
    /// upsertContact: true when it created, false when it updated a match; null when the
    /// provider (Mainbrainer) does not say, and for other mutations.
    pub created: Option<bool>,
}

#[derive(SimpleObject, Default)]
pub struct DeleteContactPayload {
    pub deleted_id: Option<ID>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject, Default)]
pub struct DoNotContactPayload {
    /// One per provider the request concerned, in ProviderId order.
    pub results: Vec<DoNotContactResult>,
    /// The registry's entry: made by this request, or the one that already held the phone
    /// and email (removeFromDoNotContact: the entry removed).
    pub entry: Option<DoNotContactEntry>,
    pub user_errors: Vec<UserError>,
}

impl DoNotContactPayload {
    fn from_outcome(outcome: std::result::Result<Registration, WriteError>) -> Result<Self> {
        let (registration, user_errors) = settle(outcome)?;
        Ok(match registration {
            Some(r) => DoNotContactPayload {
                results: r.results.into_iter().map(Into::into).collect(),
                entry: Some(r.entry.into()),
                user_errors,
            },
            None => DoNotContactPayload {
                user_errors,
                ..Default::default()
            },
        })
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ImportRowStatus {
    Created,
    Failed,
}

#[derive(SimpleObject)]
pub struct ImportRowResult {
    /// The row's line in the file (the header is line 1).
    pub line: u64,
    pub status: ImportRowStatus,
    pub contact: Option<ContactObject>,
    pub user_errors: Vec<UserError>,
    /// The row was written, but the provider's answer does not show these values as given.
    pub warnings: Vec<UserError>,
    /// A provider failure on this row, e.g. PROVIDER_UNAVAILABLE (a timed-out row may have
    /// been created: it is not retried).
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

#[derive(SimpleObject, Default)]
pub struct ImportContactsPayload {
    pub results: OneByOne<ImportRowResult>,
    pub created_count: u64,
    pub failed_count: u64,
    /// File-level problems (no header, unknown columns), found before any row is sent.
    pub user_errors: Vec<UserError>,
}

/// A mutation's id argument; a malformed one is the caller's to fix.
fn parse_id(id: &ID) -> Result<GlobalId, Vec<UserError>> {
    GlobalId::parse(id)
        .map_err(|message| vec![UserError::new(&["id"], UserErrorCode::InvalidId, message)])
}

/// The payload of a write that returns a contact.
fn written(
    outcome: std::result::Result<Written, WriteError>,
    created: Option<bool>,
) -> Result<ContactPayload> {
    let (written, errors) = settle(outcome)?;
    Ok(match written {
        Some(w) => ContactPayload {
            contact: Some(ContactObject(w.contact)),
            user_errors: errors,
            warnings: w.warnings,
            created,
        },
        None => ContactPayload {
            user_errors: errors,
            ..Default::default()
        },
    })
}

/// Splits a write outcome into (value, userErrors), or a GraphQL error for provider failures.
fn settle<T>(outcome: std::result::Result<T, WriteError>) -> Result<(Option<T>, Vec<UserError>)> {
    match outcome {
        Ok(value) => Ok((Some(value), Vec::new())),
        Err(WriteError::User(errors)) => Ok((None, errors)),
        Err(WriteError::Provider(e)) => Err(write_error(&e)),
        Err(WriteError::Store(why)) => Err(super::errors::store_error(&why)),
    }
}

pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates a contact in `input.provider`.
    async fn create_contact(
        &self,
        ctx: &Context<'_>,
        input: CreateContactInput,
    ) -> Result<ContactPayload> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let provider = input.provider;
        let outcome = gateway.create_contact(provider, input.draft()).await;
        written(outcome, None)
    }

    /// Patches a contact: absent fields keep their values, `null` clears (where the provider can).
    async fn update_contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateContactInput,
    ) -> Result<ContactPayload> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let id = match parse_id(&id) {
            Ok(id) => id,
            Err(user_errors) => {
                return Ok(ContactPayload {
                    user_errors,
                    ..Default::default()
                })
            }
        };
        written(gateway.update_contact(&id, input.draft()).await, None)
    }

    /// Updates the contact matching by email and/or phone, or creates one.
    async fn upsert_contact(
        &self,
        ctx: &Context<'_>,
        input: UpsertContactInput,
    ) -> Result<ContactPayload> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let provider = input.contact.provider;
        let match_by = input
            .match_by
            .unwrap_or_else(|| vec![MatchField::Email, MatchField::Phone]);
        let (email, phone) = (
            match_by.contains(&MatchField::Email),
            match_by.contains(&MatchField::Phone),
        );
        let outcome = gateway
            .upsert_contact(provider, input.contact.draft(), email, phone)
            .await;
        match outcome {
            Ok(u) => written(Ok(u.written), u.created),
            Err(e) => written(Err(e), None),
        }
    }

    /// Deletes a contact where the provider documents it.
    async fn delete_contact(&self, ctx: &Context<'_>, id: ID) -> Result<DeleteContactPayload> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let global = match parse_id(&id) {
            Ok(id) => id,
            Err(user_errors) => {
                return Ok(DeleteContactPayload {
                    user_errors,
                    ..Default::default()
                })
            }
        };
        let (deleted, user_errors) = settle(gateway.delete_contact(&global).await)?;
        Ok(DeleteContactPayload {
            deleted_id: deleted.map(|_| id),
            user_errors,
        })
    }

    /// Adds tags (a tag already there is a no-op).
    async fn add_tags(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tags: Vec<String>,
    ) -> Result<ContactPayload> {
        change_tags(ctx, id, tags, true).await
    }

    /// Removes tags (a tag not there is a no-op).
    async fn remove_tags(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tags: Vec<String>,
    ) -> Result<ContactPayload> {
        change_tags(ctx, id, tags, false).await
    }

    /// Records a phone and/or email in the gateway's do-not-contact registry (durably, before
    /// any call; the same phone and email again finds the entry already there), then
    /// propagates it to every provider's do-not-contact mechanism. One result per provider:
    /// APPLIED, PENDING (retried by the gateway until applied), UNSUPPORTED (none documented)
    /// or FAILED.
    async fn add_to_do_not_contact(
        &self,
        ctx: &Context<'_>,
        input: DoNotContactInput,
    ) -> Result<DoNotContactPayload> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let (request, providers) = match dnc_request(ctx, input) {
            Ok(parsed) => parsed,
            Err(user_errors) => {
                return Ok(DoNotContactPayload {
                    user_errors,
                    ..Default::default()
                })
            }
        };
        DoNotContactPayload::from_outcome(gateway.do_not_contact(&request, providers).await)
    }

    /// Removes every entry holding the phone or the email from the gateway's registry. No
    /// provider is called: none documents a way to undo its own entry, and opting back in
    /// would assume consent, so every provider's result is UNSUPPORTED and says so.
    async fn remove_from_do_not_contact(
        &self,
        ctx: &Context<'_>,
        input: DoNotContactInput,
    ) -> Result<DoNotContactPayload> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let (request, providers) = match dnc_request(ctx, input) {
            Ok(parsed) => parsed,
            Err(user_errors) => {
                return Ok(DoNotContactPayload {
                    user_errors,
                    ..Default::default()
                })
            }
        };
        DoNotContactPayload::from_outcome(
            gateway
                .remove_from_do_not_contact(&request, providers)
                .await,
        )
    }

    /// Imports a CSV whose header row names unified fields (firstName, lastName, email, phone,
    /// company, notes, tags, stage, groupId, emailOptIn, smsOptIn, isTest, custom.<key>); one
    /// result per data row, in order; a bad row never stops the others.
    async fn import_contacts(
        &self,
        ctx: &Context<'_>,
        provider: ProviderId,
        csv: String,
    ) -> Result<ImportContactsPayload> {
        let gateway = ctx.data::<Arc<Gateway>>()?;
        let keep_contacts = ctx.look_ahead().field("results").field("contact").exists();
        let rows = match gateway.import_contacts(provider, &csv, keep_contacts).await {
            Ok(rows) => rows,
            Err(WriteError::User(errors)) => {
                return Ok(ImportContactsPayload {
                    user_errors: errors,
                    ..Default::default()
                })
            }
            Err(WriteError::Provider(e)) => return Err(write_error(&e)),
            Err(WriteError::Store(why)) => return Err(super::errors::store_error(&why)),
        };
        let mut payload = ImportContactsPayload::default();
        payload.results.0.reserve_exact(rows.len());
        for row in rows {
            let created = row.created;
            if created {
                payload.created_count += 1;
            } else {
                payload.failed_count += 1;
            }
            payload.results.0.push(ImportRowResult {
                line: row.line,
                status: if created {
                    ImportRowStatus::Created
                } else {
                    ImportRowStatus::Failed
                },
                contact: row.contact.map(ContactObject),
                user_errors: row.user_errors,
                warnings: row.warnings,
                error_code: row
                    .error
                    .as_ref()
                    .map(|e| super::errors::code(e).to_string()),
                error_message: row.error.as_ref().map(|e| write_error(e).message),
            });
        }
        Ok(payload)
    }
}

/// A do-not-contact input, validated: the phone in E.164 (read in the gateway's region).
fn dnc_request(
    ctx: &Context<'_>,
    input: DoNotContactInput,
) -> std::result::Result<(crate::write::DoNotContact, Option<Vec<ProviderId>>), Vec<UserError>> {
    let region = ctx
        .data::<super::query::QuerySettings>()
        .ok()
        .and_then(|s| crate::phone::parse_region(&s.default_region));
    let request = validate::do_not_contact(input.phone, input.email, input.reason, region)?;
    Ok((request, input.providers))
}

async fn change_tags(
    ctx: &Context<'_>,
    id: ID,
    tags: Vec<String>,
    add: bool,
) -> Result<ContactPayload> {
    let gateway = ctx.data::<Arc<Gateway>>()?;
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(user_errors) => {
            return Ok(ContactPayload {
                user_errors,
                ..Default::default()
            })
        }
    };
    let (changed, user_errors) = settle(gateway.change_tags(&id, tags, add).await)?;
    let (contact, warnings) = changed.map_or((None, Vec::new()), |c| (c.contact, c.warnings));
    Ok(ContactPayload {
        contact: contact.map(ContactObject),
        user_errors,
        warnings,
        ..Default::default()
    })
}
