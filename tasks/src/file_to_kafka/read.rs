//! A file read a batch of records at a time, never whole: lines, JSON lines, or CSV rows with
//! a header.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
};

use super::FileFormat;
use crate::{TaskError, jq::Val};

/// One record of the file: its JSON (or, for a line that is not UTF-8, its raw bytes), and the
/// parsed value when there is one.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FileRecord {
    /// 1-based line of the file (of the row's first line for CSV).
    pub line: u64,
    pub payload: Vec<u8>,
    pub value: Option<Val>,
}

pub(super) enum FileReader {
    Lines {
        file: BufReader<File>,
        line: u64,
    },
    Jsonl {
        file: BufReader<File>,
        line: u64,
    },
    Csv {
        rows: csv::Reader<File>,
        headers: Vec<String>,
    },
}

fn failed(path: &Path, error: impl std::fmt::Display) -> TaskError {
    TaskError::Failed(format!("reading {}: {error}", path.display()))
}

impl FileReader {
    pub(super) fn open(path: &Path, format: FileFormat) -> Result<Self, TaskError> {
        let file = File::open(path).map_err(|e| failed(path, e))?;
        Ok(match format {
            FileFormat::Lines => Self::Lines {
                file: BufReader::new(file),
                line: 0,
            },
            FileFormat::Jsonl => Self::Jsonl {
                file: BufReader::new(file),
                line: 0,
            },
            FileFormat::Csv => {
                let mut rows = csv::ReaderBuilder::new().flexible(false).from_reader(file);
                let headers = rows
                    .headers()
                    .map_err(|e| failed(path, e))?
                    .iter()
                    .map(str::to_owned)
                    .collect();
                Self::Csv { rows, headers }
            }
        })
    }

    /// Up to `max` more records; none at the end of the file.
    pub(super) fn next_batch(
        &mut self,
        max: usize,
        path: &Path,
    ) -> Result<Vec<FileRecord>, TaskError> {
        let mut batch = Vec::with_capacity(max.min(10_000));
        while batch.len() < max {
            let record = match self {
                Self::Lines { file, line } => {
                    next_line(file, line, path)?.map(|(n, bytes)| text_record(n, bytes))
                }
                Self::Jsonl { file, line } => loop {
                    match next_line(file, line, path)? {
                        None => break None,
                        Some((_, bytes)) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
                        Some((n, bytes)) => break Some(json_record(n, bytes)),
                    }
                },
                Self::Csv { rows, headers } => next_row(rows, headers, path)?,
            };
            match record {
                Some(record) => batch.push(record),
                None => break,
            }
        }
        Ok(batch)
    }
}

/// The next line without its line break; `line` counts lines read.
fn next_line(
    file: &mut BufReader<File>,
    line: &mut u64,
    path: &Path,
) -> Result<Option<(u64, Vec<u8>)>, TaskError> {
    let mut bytes = Vec::new();
    if file
        .read_until(b'\n', &mut bytes)
        .map_err(|e| failed(path, e))?
        == 0
    {
        return Ok(None);
    }
    *line += 1;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(Some((*line, bytes)))
}

/// A line as a JSON string; a line that is not UTF-8 goes as its raw bytes (a stream reading
/// it dead-letters it as invalid JSON).
fn text_record(line: u64, bytes: Vec<u8>) -> FileRecord {
    match String::from_utf8(bytes) {
        Ok(text) => {
            let payload = serde_json::to_vec(&text).unwrap_or_default();
            FileRecord {
                line,
                value: crate::jq::parse_json(&payload).ok(),
                payload,
            }
        }
        Err(raw) => FileRecord {
            line,
            payload: raw.into_bytes(),
            value: None,
        },
    }
}

/// A JSON line as it is; its value when it parses.
fn json_record(line: u64, bytes: Vec<u8>) -> FileRecord {
    FileRecord {
        line,
        value: crate::jq::parse_json(&bytes).ok(),
        payload: bytes,
    }
}

fn next_row(
    rows: &mut csv::Reader<File>,
    headers: &[String],
    path: &Path,
) -> Result<Option<FileRecord>, TaskError> {
    let mut row = csv::StringRecord::new();
    if !rows.read_record(&mut row).map_err(|e| failed(path, e))? {
        return Ok(None);
    }
    let line = row.position().map_or(0, |p| p.line());
    let object: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .zip(row.iter())
        .map(|(name, value)| (name.clone(), serde_json::Value::from(value)))
        .collect();
    let payload = serde_json::to_vec(&object).unwrap_or_default();
    Ok(Some(FileRecord {
        line,
        value: crate::jq::parse_json(&payload).ok(),
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(content: &[u8], format: FileFormat, batch: usize) -> Vec<Vec<FileRecord>> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), content).unwrap();
        let mut reader = FileReader::open(file.path(), format).unwrap();
        let mut batches = Vec::new();
        loop {
            let next = reader.next_batch(batch, file.path()).unwrap();
            if next.is_empty() {
                return batches;
            }
            batches.push(next);
        }
    }

    fn payloads(batches: &[Vec<FileRecord>]) -> Vec<String> {
        batches
            .iter()
            .flatten()
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect()
    }

    #[test]
    fn lines_become_json_strings_in_batches() {
        let batches = read_all(b"to be\r\nor \"not\"\n\nto be", FileFormat::Lines, 3);
        assert_eq!(batches.len(), 2);
        assert_eq!(
            payloads(&batches),
            ["\"to be\"", "\"or \\\"not\\\"\"", "\"\"", "\"to be\""]
        );
        assert_eq!(batches[1][0].line, 4);
    }

    #[test]
    fn a_line_that_is_not_utf8_goes_raw() {
        let batches = read_all(b"ok\n\xff\xfe bad\nfine\n", FileFormat::Lines, 10);
        let records = &batches[0];
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].payload, b"\xff\xfe bad");
        assert!(records[1].value.is_none());
        assert!(records[2].value.is_some());
    }

    #[test]
    fn json_lines_skip_blank_lines_and_keep_bad_ones() {
        let batches = read_all(b"{\"a\": 1}\n\n  \n{oops\n[2]\n", FileFormat::Jsonl, 10);
        let records = &batches[0];
        assert_eq!(payloads(&batches), ["{\"a\": 1}", "{oops", "[2]"]);
        assert_eq!(
            records.iter().map(|r| r.line).collect::<Vec<_>>(),
            [1, 4, 5]
        );
        assert!(records[1].value.is_none());
    }

    #[test]
    fn csv_rows_become_objects_by_header() {
        let batches = read_all(
            b"server,status,cpu\ns1,running,\"12,5\"\ns2,failed,99\n",
            FileFormat::Csv,
            10,
        );
        assert_eq!(
            payloads(&batches),
            [
                r#"{"server":"s1","status":"running","cpu":"12,5"}"#,
                r#"{"server":"s2","status":"failed","cpu":"99"}"#
            ]
        );
        assert_eq!(batches[0][1].line, 3);
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = FileReader::open(Path::new("/nonexistent/x.txt"), FileFormat::Lines)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("/nonexistent/x.txt"), "{error}");
    }
}
