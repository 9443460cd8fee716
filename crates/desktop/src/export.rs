//! The Security screen's export for a security review: every token of the account as CSV or
//! JSON. Rows carry no secret (the hint is already masked), so neither does the file.
//!
//! CSV follows RFC 4180 (comma, CRLF, fields quoted when they hold a comma, quote or line
//! break), written by the `csv` crate. Labels and user agents come from whoever made the
//! token, so a field that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
//! `@`, tab or CR) gets a leading `'` first ([`defuse`], ours): the file is for reading,
//! never for executing.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::desktop::Desktop;
use crate::error::DesktopError;
use crate::server_url::ServerUrl;
use crate::tokens::{TokenOrigin, TokenRow, TokenStatus};

/// The formats a list can be exported in.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One row per token, for a spreadsheet.
    Csv,
    /// The whole list with who exported it from where, for tools.
    Json,
}

impl ExportFormat {
    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
        }
    }
}

/// What an export is of: the account, the server, and when.
#[derive(Debug, Clone, Serialize)]
pub struct ExportHeader<'a> {
    /// The server the list came from.
    pub server_url: &'a str,
    /// The account.
    pub username: &'a str,
    /// When the list was read.
    pub exported_at: DateTime<Utc>,
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 14] = [
    "uuid",
    "label",
    "origin",
    "this_device",
    "scope",
    "state",
    "created_at",
    "last_used",
    "expires_at",
    "creator_ip",
    "creator_ua",
    "client_id",
    "hint",
    "uses_30_days",
];

/// `rows` as CSV: a header line, then one line per token, in the order given.
pub fn to_csv(rows: &[TokenRow]) -> Result<String, csv::Error> {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    out.write_record(CSV_COLUMNS)?;
    for row in rows {
        let fields = [
            row.uuid.to_string(),
            row.label.clone(),
            origin_word(row.origin).to_owned(),
            row.this_device.to_string(),
            row.scope_words.clone(),
            state_word(row.state).to_owned(),
            timestamp(Some(row.created_at)),
            timestamp(row.last_used),
            timestamp(row.expires_at),
            row.creator_ip.clone(),
            row.creator_ua.clone(),
            row.client_id.clone(),
            row.hint.clone(),
            row.usage
                .iter()
                .map(|day| day.uses)
                .sum::<u64>()
                .to_string(),
        ];
        out.write_record(fields.iter().map(|field| defuse(field).into_owned()))?;
    }
    let bytes = out
        .into_inner()
        .map_err(|err| csv::Error::from(err.into_error()))?;
    // Every field was a `String`, so the bytes are UTF-8.
    String::from_utf8(bytes)
        .map_err(|err| csv::Error::from(std::io::Error::new(std::io::ErrorKind::InvalidData, err)))
}

/// `field` as a spreadsheet may show but never run: with a leading `'` when it starts like a
/// formula (`=`, `+`, `-`, `@`, tab or CR).
fn defuse(field: &str) -> Cow<'_, str> {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{field}"))
    } else {
        Cow::Borrowed(field)
    }
}

/// `rows` as a JSON document: the header's fields, `token_count`, and `tokens`, each a row as
/// the screen has it (with its per-day usage).
pub fn to_json(header: &ExportHeader<'_>, rows: &[TokenRow]) -> serde_json::Result<String> {
    #[derive(Serialize)]
    struct Document<'a> {
        #[serde(flatten)]
        header: &'a ExportHeader<'a>,
        token_count: usize,
        tokens: &'a [TokenRow],
    }
    let mut json = serde_json::to_string_pretty(&Document {
        header,
        token_count: rows.len(),
        tokens: rows,
    })?;
    json.push('\n');
    Ok(json)
}

/// An export, rendered and ready to be written.
#[derive(Debug, Clone)]
pub struct Export {
    /// The file's content.
    pub content: String,
    /// How many tokens it lists.
    pub token_count: usize,
    /// A file name to suggest, such as `hubkey-tokens-ann-2026-11-29.csv`.
    pub suggested_name: String,
}

impl Desktop {
    /// Every token of the account signed in to `server`, read from the server now (the
    /// whole list, whatever the screen filters) and rendered as `format`, dated by the
    /// core's clock.
    pub async fn export_tokens(
        &self,
        server: &ServerUrl,
        format: ExportFormat,
    ) -> Result<Export, DesktopError> {
        // Not restarted under it (`carry_over.rs`).
        let _busy = self.busy();
        let rows = self.list_tokens(server).await?;
        let username = self
            .session_username(server)
            .ok_or(DesktopError::SessionEnded)?;
        let header = ExportHeader {
            server_url: server.as_str(),
            username: &username,
            exported_at: self.now(),
        };
        let content = match format {
            ExportFormat::Csv => to_csv(&rows).map_err(|err| DesktopError::InvalidInput {
                message: format!("The token list could not be written as CSV: {err}"),
            })?,
            ExportFormat::Json => {
                to_json(&header, &rows).map_err(|err| DesktopError::InvalidInput {
                    message: format!("The token list could not be written as JSON: {err}"),
                })?
            }
        };
        Ok(Export {
            content,
            token_count: rows.len(),
            suggested_name: format!(
                "hubkey-tokens-{username}-{}.{}",
                header.exported_at.format("%Y-%m-%d"),
                format.extension()
            ),
        })
    }
}

/// Writes `content` to `path` whole or not at all: into a temporary file beside it, flushed
/// to disk, then renamed over it. A failure leaves an earlier file at `path` as it was.
pub fn write_file(path: &Path, content: &str) -> Result<(), DesktopError> {
    let failed = |err: std::io::Error| DesktopError::FileNotWritten {
        path: path.to_path_buf(),
        detail: err.to_string(),
    };
    let name = path
        .file_name()
        .ok_or_else(|| DesktopError::FileNotWritten {
            path: path.to_path_buf(),
            detail: "that is a folder, not a file name".into(),
        })?;
    let mut partial_name = std::ffi::OsString::from(".");
    partial_name.push(name);
    partial_name.push(".part");
    let partial: PathBuf = path.with_file_name(partial_name);
    let written = std::fs::File::create(&partial).and_then(|mut file| {
        file.write_all(content.as_bytes())?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&partial, path)) {
        Ok(()) => Ok(()),
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            Err(failed(err))
        }
    }
}

fn timestamp(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn origin_word(origin: TokenOrigin) -> &'static str {
    match origin {
        TokenOrigin::Auto => "auto",
        TokenOrigin::Manual => "manual",
    }
}

fn state_word(state: TokenStatus) -> &'static str {
    match state {
        TokenStatus::Active => "active",
        TokenStatus::Inactive => "inactive",
        TokenStatus::Expired => "expired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{DayUse, TokenScope};

    fn row(label: &str) -> TokenRow {
        TokenRow {
            uuid: uuid::Uuid::nil(),
            label: label.to_owned(),
            origin: TokenOrigin::Manual,
            this_device: false,
            scope: Some(TokenScope::Write),
            scope_words: "read & write".into(),
            hint: "hkpat_…abcd".into(),
            created_at: DateTime::UNIX_EPOCH,
            last_used: None,
            creator_ip: "127.0.0.1".into(),
            creator_ua: "curl/8".into(),
            client_id: String::new(),
            state: TokenStatus::Inactive,
            expires_at: None,
            usage: vec![
                DayUse {
                    day: chrono::NaiveDate::MIN,
                    uses: 2,
                },
                DayUse {
                    day: chrono::NaiveDate::MAX,
                    uses: 3,
                },
            ],
            rotated_from: None,
            rotated_to: None,
            overlap_until: None,
            last_addresses: vec![],
            new_address_alerts: true,
        }
    }

    #[test]
    fn a_failed_write_keeps_the_earlier_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        write_file(&path, "first").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        // A directory where the temporary file would go makes the write fail.
        std::fs::create_dir(dir.path().join(".tokens.csv.part")).unwrap();
        let err = write_file(&path, "second").unwrap_err();
        assert_eq!(err.code(), "file_not_written");
        assert!(err.to_string().contains("tokens.csv"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_token() {
        let csv = to_csv(&[row("ci")]).unwrap();
        let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "00000000-0000-0000-0000-000000000000,ci,manual,false,read & write,inactive,\
             1970-01-01T00:00:00Z,,,127.0.0.1,curl/8,,hkpat_…abcd,5"
        );
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        let csv = to_csv(&[row("a, \"b\"\nc")]).unwrap();
        assert!(csv.contains(",\"a, \"\"b\"\"\nc\","), "{csv}");
    }

    #[test]
    fn csv_defuses_what_a_spreadsheet_would_run() {
        let csv = to_csv(&[row("=HYPERLINK(\"x\")"), row("@sum"), row("-1")]).unwrap();
        assert!(csv.contains(",\"'=HYPERLINK(\"\"x\"\")\","), "{csv}");
        assert!(csv.contains(",'@sum,"), "{csv}");
        assert!(csv.contains(",'-1,"), "{csv}");
    }

    proptest::proptest! {
        /// Whatever a label holds, a CSV reader gets it back (defused) in its own column.
        #[test]
        fn any_label_reads_back_in_its_column(label in "\\PC{0,40}") {
            let csv = to_csv(&[row(&label)]).unwrap();
            let mut reader = csv::ReaderBuilder::new().from_reader(csv.as_bytes());
            let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
            proptest::prop_assert_eq!(records.len(), 1);
            proptest::prop_assert_eq!(records[0].len(), CSV_COLUMNS.len());
            let defused = defuse(&label);
            proptest::prop_assert_eq!(&records[0][1], defused.as_ref());
        }
    }

    #[test]
    fn json_names_the_account_and_counts_the_tokens() {
        let header = ExportHeader {
            server_url: "http://127.0.0.1:1",
            username: "ann",
            exported_at: DateTime::UNIX_EPOCH,
        };
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&header, &[row("ci")]).unwrap()).unwrap();
        assert_eq!(json["username"], "ann");
        assert_eq!(json["server_url"], "http://127.0.0.1:1");
        assert_eq!(json["token_count"], 1);
        assert_eq!(json["tokens"][0]["label"], "ci");
        assert_eq!(json["tokens"][0]["usage"][1]["uses"], 3);
    }
}
