//! `importContacts`: no provider documents a usable CSV import body, so the gateway parses
//! the CSV itself (header row naming unified fields), validates every row, and creates row by
//! row under a concurrency bound (Mainbrainer upserts, per NOTES Decision 5). One bad row never
//! stops the others; results come back in row order. A file holds at most `[limits]
//! max_import_rows` data rows, and its rows are exempt from the request's upstream budget.
//!
//! The CSV is read strictly (RFC 4180 quoting) by `Records`: the csv crate reads a quote left
//! open to the end of the text as one long cell, without an error, so a stray quote silently
//! merged the rows after it into one contact; finding that takes the same quote scan as
//! splitting the records, so the splitting is done here.

use super::writes::WriteError;
use super::Gateway;
use crate::contact::{shown, Contact, ProviderId};
use crate::providers::request_budget;
use crate::providers::{Capability, ProviderError};
use crate::write::{ContactDraft, Field, Patch, UserError, UserErrorCode};
use futures::stream::{self, StreamExt};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// Rows created at once (each provider's client bounds its own in-flight requests too).
const CONCURRENT_ROWS: usize = 8;

/// The outcome of one data row.
pub struct RowResult {
    /// The row's line in the file (the header is line 1).
    pub line: u64,
    /// Whether the provider took the row.
    pub created: bool,
    /// The contact the row became, when the caller keeps them (`keep_contacts`).
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
fn row_draft(columns: &[Column], record: &[String]) -> Result<ContactDraft, Vec<UserError>> {
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
    /// found before any row is sent. The contacts created are kept in the results only with
    /// `keep_contacts` (thousands of them would hold megabytes nobody reads).
    pub async fn import_contacts(
        &self,
        id: ProviderId,
        csv_text: &str,
        keep_contacts: bool,
    ) -> Result<Vec<RowResult>, WriteError> {
        let provider = self
            .registry
            .capable(id, Capability::Import)
            .map_err(WriteError::Provider)?;
        // A BOM we strip; CRLF and CR line ends read as LF.
        let text = csv_text.strip_prefix('\u{feff}').unwrap_or(csv_text);
        // Copied only when there is something to change: the file may be megabytes.
        let text = match text.contains('\r') {
            true => Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n")),
            false => Cow::Borrowed(text),
        };
        let mut records = Records::new(&text);
        let headers = match records.next() {
            None => Vec::new(),
            Some(Record {
                cells: Ok(cells), ..
            }) => cells,
            Some(Record {
                cells: Err(why), ..
            }) => {
                return Err(file_error(format!("the header row cannot be read: {why}")));
            }
        };
        if headers.iter().all(|h| h.trim().is_empty()) {
            return Err(file_error(
                "the CSV has no header row naming the columns".into(),
            ));
        }
        let mut columns = Vec::new();
        let mut unknown = Vec::new();
        for header in &headers {
            match Column::parse(header) {
                Some(column) if !columns.contains(&column) => columns.push(column),
                Some(_) => unknown.push(format!("`{}` (twice)", shown(header))),
                None => unknown.push(format!("`{}`", shown(header))),
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
        let rows = Records::new(&text)
            .skip(1)
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
        let rows = records.map(|record| (record.line, record.cells));
        let columns = &columns;
        let results = stream::iter(rows)
            .map(|(line, record)| {
                let provider = provider.clone();
                async move {
                    let fail = |user_errors: Vec<UserError>| RowResult {
                        line,
                        created: false,
                        contact: None,
                        user_errors,
                        warnings: Vec::new(),
                        error: None,
                    };
                    let record = match record {
                        Ok(cells) => cells,
                        Err(why) => {
                            return fail(vec![UserError::new(
                                &[],
                                UserErrorCode::MalformedRow,
                                format!("the row cannot be read: {why}"),
                            )]);
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
                    match self.registered_opt_ins(&input.as_patch(), None, &[]).await {
                        Ok(errors) if errors.is_empty() => {}
                        Ok(errors) => return fail(errors),
                        Err(why) => {
                            return fail(vec![UserError::new(
                                &[],
                                UserErrorCode::Invalid,
                                format!(
                                    "not sent: the do-not-contact registry cannot be read ({why})"
                                ),
                            )])
                        }
                    }
                    let written = if native_upsert {
                        provider.upsert(&input).await
                    } else {
                        provider.create(&input).await
                    };
                    if let Ok(contact) = &written {
                        let kind = if native_upsert {
                            self.upserted_kind(contact).await
                        } else {
                            crate::change::ChangeKind::Created
                        };
                        self.publish_contact(kind, contact).await;
                    }
                    match written {
                        Ok(contact) => RowResult {
                            line,
                            created: true,
                            warnings: input.as_patch().unstored(&contact),
                            contact: keep_contacts.then(|| Arc::new(contact)),
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
        self.cache.invalidate_provider(id).await;
        Ok(results)
    }
}

/// One record of the CSV text: the line it starts on (the header is line 1), and its cells
/// or why it cannot be read.
struct Record {
    line: u64,
    cells: Result<Vec<String>, String>,
}

/// The records of a CSV text (line ends already LF), read strictly: a cell that starts with
/// `"` is quoted, holds `""` for a quote and line breaks as they are, and ends at a quote
/// followed by `,`, a line end or the end of the text. A quote left open to the end of the
/// text, or closed in the middle of a cell, makes its record malformed, and reading goes on
/// at the line after the one the quote opened on: a stray quote never merges the rows after
/// it into one. A `"` inside an unquoted cell is a character. Blank lines are skipped.
struct Records<'a> {
    text: &'a str,
    /// Where the next record starts.
    at: usize,
    /// The line `at` is on.
    line: u64,
}

impl<'a> Records<'a> {
    fn new(text: &'a str) -> Self {
        Records {
            text,
            at: 0,
            line: 1,
        }
    }

    /// Reading goes on at the line after `line`, the one holding byte `at` of the text.
    fn resume_after(&mut self, line: u64, at: usize) {
        self.at = memchr::memchr(b'\n', &self.text.as_bytes()[at..])
            .map_or(self.text.len(), |k| at + k + 1);
        self.line = line + 1;
    }
}

impl Iterator for Records<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let bytes = self.text.as_bytes();
        while bytes.get(self.at) == Some(&b'\n') {
            self.at += 1;
            self.line += 1;
        }
        if self.at >= bytes.len() {
            return None;
        }
        let first_line = self.line;
        let (mut i, mut line) = (self.at, self.line);
        let mut cells = Vec::new();
        loop {
            let mut cell = String::new();
            if bytes.get(i) == Some(&b'"') {
                let (opened_at, opened_on) = (i, line);
                i += 1;
                loop {
                    let Some(k) = memchr::memchr(b'"', &bytes[i..]) else {
                        self.resume_after(opened_on, opened_at);
                        let why = format!(
                            "the quote opened on line {opened_on} is never closed (a quote \
                             inside a cell is written twice: \"\")"
                        );
                        return Some(Record {
                            line: first_line,
                            cells: Err(why),
                        });
                    };
                    let part = &self.text[i..i + k];
                    line += part.bytes().filter(|b| *b == b'\n').count() as u64;
                    cell.push_str(part);
                    i += k + 1;
                    if bytes.get(i) == Some(&b'"') {
                        cell.push('"');
                        i += 1;
                    } else {
                        break;
                    }
                }
                if !matches!(bytes.get(i), None | Some(b',') | Some(b'\n')) {
                    self.resume_after(opened_on, opened_at);
                    let why = format!(
                        "the quoted cell opened on line {opened_on} goes on after its closing \
                         quote on line {line} (a quote inside a cell is written twice: \"\")"
                    );
                    return Some(Record {
                        line: first_line,
                        cells: Err(why),
                    });
                }
            } else {
                let end = memchr::memchr2(b',', b'\n', &bytes[i..]).map_or(bytes.len(), |k| i + k);
                cell.push_str(&self.text[i..end]);
                i = end;
            }
            cells.push(cell);
            match bytes.get(i) {
                Some(b',') => i += 1,
                Some(_) => {
                    // The line end.
                    i += 1;
                    line += 1;
                    break;
                }
                None => break,
            }
        }
        self.at = i;
        self.line = line;
        Some(Record {
            line: first_line,
            cells: Ok(cells),
        })
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
        let record = cells(&["Ada", "ada@example.com", "vip; beta", "yes", "pro"]);
        let draft = row_draft(&columns, &record).unwrap();
        assert_eq!(draft.first_name, Patch::Set("Ada".into()));
        assert_eq!(draft.tags, Patch::Set(vec!["vip".into(), " beta".into()]));
        assert_eq!(draft.sms_opt_in, Patch::Set(true));
        assert_eq!(
            draft.custom_fields,
            Patch::Set(serde_json::json!({ "plan": "pro" }))
        );
        let bad = cells(&["Ada", "", "", "maybe", ""]);
        assert_eq!(
            row_draft(&columns, &bad).unwrap_err()[0].code,
            UserErrorCode::Invalid
        );
    }

    fn cells(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// (line, cells or the start of the error) of each record.
    fn read(text: &str) -> Vec<(u64, Result<Vec<String>, String>)> {
        Records::new(text)
            .map(|r| (r.line, r.cells.map_err(|e| e.chars().take(40).collect())))
            .collect()
    }

    #[test]
    fn records_are_read_strictly() {
        // Quoted cells with a comma, a doubled quote and a line break; a quote inside an
        // unquoted cell; blank lines; an empty last cell.
        assert_eq!(
            read("a,b\n\n\"x, y\",\"say \"\"hi\"\"\"\n5\"10,\"two\nlines\"\nlast,\n"),
            [
                (1, Ok(cells(&["a", "b"]))),
                (3, Ok(cells(&["x, y", "say \"hi\""]))),
                (4, Ok(cells(&["5\"10", "two\nlines"]))),
                (6, Ok(cells(&["last", ""]))),
            ]
        );
        assert_eq!(read("only"), [(1, Ok(cells(&["only"])))]);
        assert_eq!(read("\n\n"), []);
    }

    #[test]
    fn an_unbalanced_quote_fails_its_row_and_the_next_lines_still_read() {
        // Never closed: the rows after it would have become one cell.
        let rows = read("h1,h2\n\"Ada,ada@x.example\nBob,bob@x.example\nCy,cy@x.example\n");
        assert_eq!(rows[0], (1, Ok(cells(&["h1", "h2"]))));
        assert_eq!(
            rows[1],
            (2, Err("the quote opened on line 2 is never clos".into()))
        );
        assert_eq!(rows[2], (3, Ok(cells(&["Bob", "bob@x.example"]))));
        assert_eq!(rows[3], (4, Ok(cells(&["Cy", "cy@x.example"]))));
        // Closed by a later row's quote, in the middle of its cell.
        let rows = read("\"Ada,ada@x.example\nBob,\"bob\"@x.example\nCy,cy\n");
        assert_eq!(
            rows[0],
            (1, Err("the quoted cell opened on line 1 goes on".into()))
        );
        assert_eq!(
            rows[1],
            (2, Err("the quoted cell opened on line 2 goes on".into()))
        );
        assert_eq!(rows[2], (3, Ok(cells(&["Cy", "cy"]))));
    }
}
