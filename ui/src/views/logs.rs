use serde::Serialize;

/// Which part of a try's log to read. Offsets are bytes; chunks always hold whole lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRange {
    /// The last `lines` lines.
    Tail { lines: usize },
    /// The `lines` lines that end just before byte `offset`.
    Before { offset: u64, lines: usize },
    /// From byte `offset`, at most `lines` lines.
    From { offset: u64, lines: usize },
    /// What was written after byte `offset` exactly (at most 4 MB of whole lines; the last
    /// line without its newline too once the try has ended).
    After { offset: u64 },
}

/// A slice of a try's log.
#[derive(Debug, Clone, Serialize)]
pub struct LogChunk {
    pub text: String,
    /// Byte offset of the chunk's first byte.
    pub start: u64,
    /// Byte offset just past the chunk.
    pub end: u64,
    /// The file's size when read.
    pub size: u64,
    /// The try has ended: the log will not grow.
    pub finished: bool,
    /// `start` is inside a line too long to show whole: its beginning is not in the chunk
    /// (reads return at most 1 MiB; the raw download has every line whole).
    pub first_line_cut: Option<CutLine>,
}

/// The length of a line too long to show whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CutLine {
    /// Bytes, without its newline.
    pub bytes: u64,
    /// False when the line is longer than `bytes` (it was measured that far).
    pub exact: bool,
}

impl CutLine {
    /// "3.0 MiB", or "more than 64.0 MiB".
    pub fn length_text(&self) -> String {
        let mib = self.bytes as f64 / (1024.0 * 1024.0);
        let size = if mib >= 1024.0 {
            format!("{:.1} GiB", mib / 1024.0)
        } else {
            format!("{mib:.1} MiB")
        };
        if self.exact {
            format!("{size} ({} bytes)", self.bytes)
        } else {
            format!("more than {size}")
        }
    }
}

impl LogChunk {
    /// The chunk's lines with the byte offset each starts at.
    pub fn lines(&self) -> Vec<(u64, &str)> {
        let mut offset = self.start;
        self.text
            .split_inclusive('\n')
            .map(|line| {
                let at = offset;
                offset += line.len() as u64;
                (at, line.trim_end_matches('\n'))
            })
            .collect()
    }
}

/// What a follower of a live log receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// Whole lines; `end` is the byte offset after them (the SSE id to resume from).
    Lines { text: String, end: u64 },
    /// The try has ended and every line was sent.
    End,
}

/// A line matching a log search.
#[derive(Debug, Clone, Serialize)]
pub struct LogMatch {
    /// Byte offset of the line.
    pub offset: u64,
    pub line: String,
}

impl LogMatch {
    /// The line cut into (text, is_match) parts for highlighting, matching `query`
    /// case-insensitively (ASCII).
    pub fn parts(&self, query: &str) -> Vec<(String, bool)> {
        highlight(&self.line, query)
    }
}

/// Cuts `line` around every case-insensitive (ASCII) occurrence of `query`.
pub(super) fn highlight(line: &str, query: &str) -> Vec<(String, bool)> {
    if query.is_empty() {
        return vec![(line.to_owned(), false)];
    }
    let lower = line.to_ascii_lowercase();
    let needle = query.to_ascii_lowercase();
    let mut parts = Vec::new();
    let mut at = 0;
    while let Some(found) = lower[at..].find(&needle) {
        let start = at + found;
        if start > at {
            parts.push((line[at..start].to_owned(), false));
        }
        parts.push((line[start..start + needle.len()].to_owned(), true));
        at = start + needle.len();
    }
    if at < line.len() {
        parts.push((line[at..].to_owned(), false));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_are_cut_out_case_insensitively() {
        let parts = highlight("Error: an error", "error");
        assert_eq!(
            parts,
            vec![
                ("Error".to_owned(), true),
                (": an ".to_owned(), false),
                ("error".to_owned(), true)
            ]
        );
    }

    #[test]
    fn chunk_lines_carry_their_offsets() {
        let chunk = LogChunk {
            text: "ab\ncde\n".into(),
            start: 10,
            end: 17,
            size: 17,
            finished: true,
            first_line_cut: None,
        };
        assert_eq!(chunk.lines(), vec![(10, "ab"), (13, "cde")]);
    }

    #[test]
    fn a_cut_lines_length_reads_in_mib() {
        let exact = CutLine {
            bytes: 3 * 1024 * 1024 + 5,
            exact: true,
        };
        assert_eq!(exact.length_text(), "3.0 MiB (3145733 bytes)");
        let longer = CutLine {
            bytes: 64 * 1024 * 1024,
            exact: false,
        };
        assert_eq!(longer.length_text(), "more than 64.0 MiB");
    }
}
