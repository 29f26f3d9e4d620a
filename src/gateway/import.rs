//! `importContacts`: no provider documents a usable CSV import body, so the gateway parses
//! the CSV itself (header row naming unified fields), validates every row, and creates row by
//! row under a concurrency bound (Mainbrainer upserts, per NOTES Decision 5). One bad row never
//! stops the others; results come back in row order. A file holds at most `[limits]
//! max_import_rows` data rows, and its rows are exempt from the request's upstream budget.

use super::writes::WriteError;
use super::Gateway;
use crate::contact::{Contact, ProviderId};
use crate::providers::request_budget;
use crate::providers::{Capability, ProviderError};
use crate::write::{ContactDraft, Field, Patch, UserError, UserErrorCode};
use futures::stream::{self, StreamExt};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Rows created at once (each provider's client bounds its own in-flight requests too).
const CONCURRENT_ROWS: usize = 8;

/// The outcome of one data row.
pub struct RowResult {
    /// The row's line in the file (the header is line 1).
    pub line: u64,
    pub contact: Option<Arc<Contact>>,
    pub user_errors: Vec<UserError>,
    /// What the provider did not store as given (the row was written).
    pub warnings: Vec<UserError>,
    /// A provider failure on this row (the row may or may not have been applied on a timeout).
    pub error: Option<ProviderError>,
}

/// What a CSV column names: a writable field (the table in `fields.rs`), or one custom
/// field's key.
#[derive(Clone, Debug, PartialEq)]
enum Column {
    Field(Field),
    /// `custom.<key>` (or `customFields.<key>`).
    Custom(String),
}

impl Column {
    /// Header names are matched ignoring case, spaces, `_` and `-` ("First Name", "first_name").
    fn parse(header: &str) -> Option<Column> {
        let trimmed = header.trim();
        for prefix in ["custom.", "customfields.", "customFields."] {
            if let Some(key) = trimmed.strip_prefix(prefix) {
                return (!key.trim().is_empty()).then(|| Column::Custom(key.trim().to_string()));
            }
        }
        match Field::from_csv_header(trimmed)? {
            // Custom fields come one key per column, under the prefix above.
            Field::CustomFields => None,
            field => Some(Column::Field(field)),
        }
    }
}

/// The columns a header may name, for the error about one it may not.
fn known_columns() -> String {
    Field::ALL
        .iter()
        .map(|f| f.csv_name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One data row as a draft; cells that are empty are "not given".
fn row_draft(
    columns: &[Column],
    record: &csv::StringRecord,
) -> Result<ContactDraft, Vec<UserError>> {
    let mut draft = ContactDraft::default();
    let mut custom = Map::new();
    let mut errors = Vec::new();
    for (column, cell) in columns.iter().zip(record.iter()) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        match column {
            Column::Field(field) => {
                if let Err(message) = draft.set_from_csv(*field, cell) {
                    errors.push(UserError::new(
                        &[field.input_name()],
                        UserErrorCode::Invalid,
                        message,
                    ));
                }
            }
            Column::Custom(key) => {
                custom.insert(key.clone(), Value::String(cell.to_string()));
            }
        }
    }
    if !custom.is_empty() {
        draft.custom_fields = Patch::Set(Value::Object(custom));
    }
    if errors.is_empty() {
        Ok(draft)
    } else {
        Err(errors)
    }
}

impl Gateway {
    /// Imports `csv` into `id`. `Err` is a file-level problem (no header, unknown columns)
    /// found before any row is sent.
    pub async fn import_contacts(
        &self,
        id: ProviderId,
        csv_text: &str,
    ) -> Result<Vec<RowResult>, WriteError> {
        let provider = self
            .registry
            .capable(id, Capability::Import)
            .map_err(WriteError::Provider)?;
        // The csv crate reads quoted fields and skips blank lines; a BOM we strip, and CRLF we
        // make LF first because the crate's line positions drift on CRLF input.
        let text = csv_text.strip_prefix('\u{feff}').unwrap_or(csv_text);
        let text = text.replace("\r\n", "\n");
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| file_error(format!("the header row cannot be read: {e}")))?
            .clone();
        if headers.iter().all(|h| h.trim().is_empty()) {
            return Err(file_error(
                "the CSV has no header row naming the columns".into(),
            ));
        }
        let mut columns = Vec::new();
        let mut unknown = Vec::new();
        for header in headers.iter() {
            match Column::parse(header) {
                Some(column) if !columns.contains(&column) => columns.push(column),
                Some(_) => unknown.push(format!("`{header}` (twice)")),
                None => unknown.push(format!("`{header}`")),
            }
        }
        if !unknown.is_empty() {
            return Err(file_error(format!(
                "unknown column(s) {}; columns name unified fields: {}",
                unknown.join(", "),
                known_columns()
            )));
        }
        // Counted before any row is sent, so a file past the bound sends nothing.
        let max_rows = self.limits.max_import_rows;
        let rows = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes())
            .into_records()
            .take(
                usize::try_from(max_rows)
                    .unwrap_or(usize::MAX)
                    .saturating_add(1),
            )
            .count() as u64;
        if rows > max_rows {
            return Err(file_error(format!(
                "the CSV has more than {max_rows} data rows ([limits] max_import_rows); split it into smaller files"
            )));
        }
        let width = columns.len();
        let native_upsert = provider.capabilities().native_upsert;
        let mut lines = LineCounter::new(&text);
        let rows = reader.into_records().map(|record| {
            let byte = match &record {
                Ok(r) => r.position().map(|p| p.byte()),
                Err(e) => e.position().map(|p| p.byte()),
            };
            (byte.map_or(0, |b| lines.line_at(b as usize)), record)
        });
        let columns = &columns;
        let results = stream::iter(rows)
            .map(|(line, record)| {
                let provider = provider.clone();
                async move {
                    let fail = |user_errors: Vec<UserError>| RowResult {
                        line,
                        contact: None,
                        user_errors,
                        warnings: Vec::new(),
                        error: None,
                    };
                    let record = match record {
                        Ok(r) => r,
                        Err(e) => {
                            return RowResult {
                                line,
                                ..fail(vec![UserError::new(
                                    &[],
                                    UserErrorCode::MalformedRow,
                                    format!("the row cannot be read: {e}"),
                                )])
                            };
                        }
                    };
                    if record.len() > width {
                        return fail(vec![UserError::new(
                            &[],
                            UserErrorCode::MalformedRow,
                            format!("the row has {} cells, the header {width}", record.len()),
                        )]);
                    }
                    let input = match row_draft(columns, &record)
                        .and_then(|draft| self.new_contact(provider.as_ref(), draft, &[]))
                    {
                        Ok(input) => input,
                        Err(errors) => return fail(errors),
                    };
                    let written = if native_upsert {
                        provider.upsert(&input).await
                    } else {
                        provider.create(&input).await
                    };
                    match written {
                        Ok(contact) => RowResult {
                            line,
                            warnings: input.as_patch().unstored(&contact),
                            contact: Some(Arc::new(contact)),
                            user_errors: Vec::new(),
                            error: None,
                        },
                        Err(ProviderError::Rejected { message, .. }) => fail(vec![UserError::new(
                            &[],
                            UserErrorCode::ProviderValidation,
                            format!("{} refused the row: {message}", id.display_name()),
                        )]),
                        Err(e) => RowResult {
                            error: Some(e),
                            ..fail(Vec::new())
                        },
                    }
                }
            })
            .buffered(CONCURRENT_ROWS)
            .collect::<Vec<_>>();
        // Bounded by `max_import_rows` instead of the request's upstream calls and deadline:
        // an import of many rows makes a call per row and may take minutes.
        let results = request_budget::exempt(results).await;
        self.cache.invalidate_provider(id);
        Ok(results)
    }
}

/// The line a record starts on. The csv crate's own line numbers count a skipped blank line
/// as the record's, so count from byte offsets; records come in order, so this is linear.
struct LineCounter<'a> {
    text: &'a str,
    byte: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter {
            text,
            byte: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, byte: usize) -> u64 {
        let byte = byte.min(self.text.len());
        if byte >= self.byte {
            self.line += self.text.as_bytes()[self.byte..byte]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            self.byte = byte;
        }
        // Blank lines skipped before the record belong to no record.
        let blank = self.text.as_bytes()[byte..]
            .iter()
            .take_while(|b| **b == b'\n')
            .count();
        self.line + blank as u64
    }
}

fn file_error(message: String) -> WriteError {
    WriteError::User(vec![UserError::new(
        &["csv"],
        UserErrorCode::InvalidCsv,
        message,
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_unified_fields_loosely() {
        let first = Some(Column::Field(Field::FirstName));
        assert_eq!(Column::parse("First Name"), first);
        assert_eq!(Column::parse("first_name"), first);
        assert_eq!(Column::parse(" EMAIL "), Some(Column::Field(Field::Emails)));
        assert_eq!(
            Column::parse("custom.plan"),
            Some(Column::Custom("plan".into()))
        );
        assert_eq!(Column::parse("favourite colour"), None);
        assert_eq!(Column::parse("custom."), None);
    }

    #[test]
    fn a_row_becomes_a_draft() {
        let columns = [
            Column::Field(Field::FirstName),
            Column::Field(Field::Emails),
            Column::Field(Field::Tags),
            Column::Field(Field::SmsOptIn),
            Column::Custom("plan".into()),
        ];
        let record =
            csv::StringRecord::from(vec!["Ada", "ada@example.com", "vip; beta", "yes", "pro"]);
        let draft = row_draft(&columns, &record).unwrap();
        assert_eq!(draft.first_name, Patch::Set("Ada".into()));
        assert_eq!(draft.tags, Patch::Set(vec!["vip".into(), " beta".into()]));
        assert_eq!(draft.sms_opt_in, Patch::Set(true));
        assert_eq!(
            draft.custom_fields,
            Patch::Set(serde_json::json!({ "plan": "pro" }))
        );
        let bad = csv::StringRecord::from(vec!["Ada", "", "", "maybe", ""]);
        assert_eq!(
            row_draft(&columns, &bad).unwrap_err()[0].code,
            UserErrorCode::Invalid
        );
    }
}
