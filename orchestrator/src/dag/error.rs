use std::{fmt, ops::Range, path::PathBuf};

use toml::de::DeTable;

/// One problem in a DAG file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The field the problem is about, e.g. `task[2].upstream` or `dag.schedule`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, "{line}:{column}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one DAG file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct DagFileError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for DagFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{file}:{problem}")?;
        }
        Ok(())
    }
}

/// Turns a byte offset into a 1-based (line, column) pair, counting columns in characters.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = source[line_start..offset].chars().count() + 1;
    (line, column)
}

/// Collects problems with positions computed from the file's text.
pub(crate) struct Problems<'s> {
    source: &'s str,
    pub(crate) list: Vec<Problem>,
}

impl<'s> Problems<'s> {
    pub(crate) fn new(source: &'s str) -> Self {
        Self {
            source,
            list: Vec::new(),
        }
    }

    pub(crate) fn at(
        &mut self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, column) = span.map(|s| line_column(self.source, s.start)).unzip();
        self.list.push(Problem {
            line,
            column,
            field: Some(field.into()),
            message: message.into(),
        });
    }

    /// Reports a deserialization error at the key it names, else where toml says, else at
    /// `fallback` (the enclosing table).
    pub(crate) fn toml_error(
        &mut self,
        error: &toml::de::Error,
        field: &str,
        table: Option<&DeTable<'_>>,
        fallback: Option<Range<usize>>,
    ) {
        let message = error.message().trim().to_owned();
        let span = named_key_span(&message, table)
            .or_else(|| error.span())
            .or(fallback);
        self.at(span, field, message);
    }
}

/// The span of the first key named in backticks in `message`, if `table` has it: serde names
/// the offending key in messages such as "unknown field `x`".
fn named_key_span(message: &str, table: Option<&DeTable<'_>>) -> Option<Range<usize>> {
    let table = table?;
    let name = message.split('`').nth(1)?;
    table
        .iter()
        .find(|(key, _)| key.get_ref() == name)
        .map(|(key, _)| key.span())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let source = "a = 1\nbb = 2\n";
        assert_eq!(line_column(source, 0), (1, 1));
        assert_eq!(line_column(source, 6), (2, 1));
        assert_eq!(line_column(source, 9), (2, 4));
    }
}
