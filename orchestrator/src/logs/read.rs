//! Reading parts of a try's log without loading it whole: the last lines, the lines before or
//! from an offset, what was appended since an offset, and a search. Offsets are bytes; every
//! slice starts at a line start and ends after a newline (or at the end of the file).

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    path::Path,
};

/// Bytes read per step when scanning backwards.
const BLOCK: u64 = 64 * 1024;
/// The most bytes one forward read returns.
const MAX_FORWARD_BYTES: usize = 4 * 1024 * 1024;
/// The most bytes a tail or an earlier-lines read returns: a longer range keeps its last
/// bytes, from the first line start among them (a line longer than this alone is cut).
pub const MAX_SLICE_BYTES: u64 = 1024 * 1024;
/// The most bytes of one line a search looks at (the rest of a longer line is skipped).
const MAX_SEARCH_LINE: usize = 64 * 1024;
/// How far a cut line is followed each way to tell its length (a longer one is "at least").
const MAX_MEASURED_LINE: u64 = 64 * 1024 * 1024;

/// A slice of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSlice {
    pub text: String,
    pub start: u64,
    pub end: u64,
    /// The file's size when read (0 when it does not exist yet).
    pub size: u64,
    /// `start` is inside a line longer than [`MAX_SLICE_BYTES`]: its beginning is not here.
    pub first_line_cut: Option<CutLine>,
}

/// The length of a line too long to show whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutLine {
    /// Bytes, without its newline.
    pub bytes: u64,
    /// False when the line goes on further than was measured: it is longer than `bytes`.
    pub exact: bool,
}

/// Random access to the bytes of a try's log: its file here, or the chunks a worker shipped
/// to the store.
pub trait LogBytes {
    /// The bytes `start..start + len` (fewer at the end).
    fn read_at(&mut self, start: u64, len: usize) -> io::Result<Vec<u8>>;
}

impl LogBytes for File {
    fn read_at(&mut self, start: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buffer = Vec::with_capacity(len);
        self.seek(SeekFrom::Start(start))?;
        self.take(len as u64).read_to_end(&mut buffer)?;
        Ok(buffer)
    }
}

/// The file at `path` and its size; None when there is no such file yet.
pub(super) fn open(path: &Path) -> io::Result<Option<(File, u64)>> {
    match File::open(path) {
        Ok(file) => {
            let size = file.metadata()?.len();
            Ok(Some((file, size)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn empty(offset: u64) -> LogSlice {
    LogSlice {
        text: String::new(),
        start: offset,
        end: offset,
        size: 0,
        first_line_cut: None,
    }
}

/// The offset where the `lines`-th line before `end` starts (scanning back block by block),
/// or `floor` if the scan gets there first.
fn start_of_lines_before(
    log: &mut (impl LogBytes + ?Sized),
    end: u64,
    lines: usize,
    floor: u64,
) -> io::Result<u64> {
    let mut newlines = 0;
    let mut position = end;
    // The newline that ends the last line does not start a line.
    let mut skip_last = end > 0 && log.read_at(end - 1, 1)?.first() == Some(&b'\n');
    while position > floor {
        let from = position.saturating_sub(BLOCK).max(floor);
        let block = log.read_at(from, (position - from) as usize)?;
        for (i, byte) in block.iter().enumerate().rev() {
            if *byte != b'\n' {
                continue;
            }
            if skip_last {
                skip_last = false;
                continue;
            }
            newlines += 1;
            if newlines == lines {
                return Ok(from + i as u64 + 1);
            }
        }
        position = from;
    }
    Ok(floor)
}

/// The `lines` lines ending at `end`, at most [`MAX_SLICE_BYTES`] of them: when the lines
/// reach further back, the slice starts at the first line start in its last bytes, or inside
/// a line too long to show whole (`first_line_cut`).
fn lines_before(
    log: &mut (impl LogBytes + ?Sized),
    end: u64,
    lines: usize,
    size: u64,
) -> io::Result<LogSlice> {
    let floor = end.saturating_sub(MAX_SLICE_BYTES);
    let start = start_of_lines_before(log, end, lines, floor)?;
    let at_line_start = start == 0 || log.read_at(start - 1, 1)?.first() == Some(&b'\n');
    if at_line_start {
        return slice(log, start, end, size);
    }
    let bytes = log.read_at(start, (end - start) as usize)?;
    let whole_lines_from = memchr::memchr(b'\n', &bytes)
        .map(|i| i + 1)
        .filter(|from| *from < bytes.len());
    let (from, first_line_cut) = match whole_lines_from {
        Some(from) => (from, None),
        None => (0, Some(measure_line(log, start, size, MAX_MEASURED_LINE)?)),
    };
    Ok(LogSlice {
        text: String::from_utf8_lossy(&bytes[from..]).into_owned(),
        start: start + from as u64,
        end,
        size,
        first_line_cut,
    })
}

/// The length of the line holding `at`, followed up to `limit` bytes each way.
fn measure_line(
    log: &mut (impl LogBytes + ?Sized),
    at: u64,
    size: u64,
    limit: u64,
) -> io::Result<CutLine> {
    let mut start = at;
    let mut start_found = at == 0;
    while !start_found && at - start < limit {
        let from = start.saturating_sub(BLOCK);
        let block = log.read_at(from, (start - from) as usize)?;
        match memchr::memrchr(b'\n', &block) {
            Some(i) => {
                start = from + i as u64 + 1;
                start_found = true;
            }
            None => {
                start = from;
                start_found = from == 0;
            }
        }
    }
    let mut end = at;
    let mut end_found = at >= size;
    while !end_found && end - at < limit {
        let block = log.read_at(end, BLOCK.min(size - end) as usize)?;
        match memchr::memchr(b'\n', &block) {
            Some(i) => {
                end += i as u64;
                end_found = true;
            }
            None => {
                end += block.len() as u64;
                end_found = block.is_empty() || end >= size;
            }
        }
    }
    Ok(CutLine {
        bytes: end - start,
        exact: start_found && end_found,
    })
}

/// The last `lines` lines of a log of `size` bytes (at most [`MAX_SLICE_BYTES`]).
pub fn tail_of(
    log: &mut (impl LogBytes + ?Sized),
    size: u64,
    lines: usize,
) -> io::Result<LogSlice> {
    lines_before(log, size, lines, size)
}

/// The `lines` lines that end just before `offset` (at most [`MAX_SLICE_BYTES`]).
pub fn before_of(
    log: &mut (impl LogBytes + ?Sized),
    size: u64,
    offset: u64,
    lines: usize,
) -> io::Result<LogSlice> {
    // Inside a line too long to show whole, its earlier part comes next.
    let end = align_to_line_start(log, offset.min(size))?;
    lines_before(log, end, lines, size)
}

/// At most `lines` lines from the line holding `offset`.
pub fn from_of(
    log: &mut (impl LogBytes + ?Sized),
    size: u64,
    offset: u64,
    lines: usize,
) -> io::Result<LogSlice> {
    let start = align_to_line_start(log, offset.min(size))?;
    let available = (size - start).min(MAX_FORWARD_BYTES as u64) as usize;
    let bytes = log.read_at(start, available)?;
    let mut end = bytes.len();
    let mut seen = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if *byte == b'\n' {
            seen += 1;
            if seen == lines {
                end = i + 1;
                break;
            }
        }
    }
    Ok(LogSlice {
        text: String::from_utf8_lossy(&bytes[..end]).into_owned(),
        start,
        end: start + end as u64,
        size,
        first_line_cut: None,
    })
}

/// The whole lines appended after `offset` (at most ~4 MB); with `to_end`, a last line
/// without its newline too (the log is closed and will not grow).
pub fn new_lines_of(
    log: &mut (impl LogBytes + ?Sized),
    size: u64,
    offset: u64,
    to_end: bool,
) -> io::Result<LogSlice> {
    if offset >= size {
        return Ok(LogSlice {
            size,
            ..empty(offset)
        });
    }
    let available = (size - offset).min(MAX_FORWARD_BYTES as u64) as usize;
    let bytes = log.read_at(offset, available)?;
    let available = bytes.len();
    let whole = match memchr::memrchr(b'\n', &bytes) {
        Some(last) if !(to_end && available as u64 == size - offset) => last + 1,
        // One line longer than a read: send it as it is rather than stall.
        None if !to_end && available == MAX_FORWARD_BYTES => bytes.len(),
        None if !to_end => 0,
        _ => bytes.len(),
    };
    Ok(LogSlice {
        text: String::from_utf8_lossy(&bytes[..whole]).into_owned(),
        start: offset,
        end: offset + whole as u64,
        size,
        first_line_cut: None,
    })
}

/// Lines holding `query` (ASCII case-insensitive), at most `limit`, with their offsets, in a
/// log of `size` bytes read block by block. Of a line longer than [`MAX_SEARCH_LINE`], only
/// its first bytes are looked at (and returned).
pub fn search_in(
    log: &mut (impl LogBytes + ?Sized),
    size: u64,
    query: &str,
    limit: usize,
) -> io::Result<Vec<(u64, String)>> {
    let needle = query.to_ascii_lowercase().into_bytes();
    let finder = memchr::memmem::Finder::new(&needle);
    let mut found = Vec::new();
    let mut lower = Vec::new();
    // `carry` holds the start of a line the previous block cut, from offset `line_start`;
    // `skipped` counts the bytes of a long line dropped after its first were checked.
    let mut carry: Vec<u8> = Vec::new();
    let mut line_start = 0u64;
    let mut skipped = 0u64;
    let mut position = 0u64;
    while position < size && found.len() < limit {
        let block = log.read_at(position, SEARCH_BLOCK.min((size - position) as usize))?;
        if block.is_empty() {
            break;
        }
        position += block.len() as u64;
        carry.extend_from_slice(&block);
        let mut consumed = 0;
        while let Some(newline) = memchr::memchr(b'\n', &carry[consumed..]) {
            let line = &carry[consumed..consumed + newline + 1];
            if skipped == 0 {
                let checked = &line[..line.len().min(MAX_SEARCH_LINE)];
                check_line(&finder, checked, line_start, &mut lower, &mut found);
            }
            line_start += skipped + line.len() as u64;
            skipped = 0;
            consumed += newline + 1;
            if found.len() >= limit {
                return Ok(found);
            }
        }
        carry.drain(..consumed);
        if carry.len() > MAX_SEARCH_LINE {
            if skipped == 0 {
                let checked = &carry[..MAX_SEARCH_LINE];
                check_line(&finder, checked, line_start, &mut lower, &mut found);
            }
            skipped += carry.len() as u64;
            carry.clear();
        }
    }
    if !carry.is_empty() && skipped == 0 && found.len() < limit {
        check_line(&finder, &carry, line_start, &mut lower, &mut found);
    }
    Ok(found)
}

/// Bytes read per step of a search.
const SEARCH_BLOCK: usize = 256 * 1024;

fn check_line(
    finder: &memchr::memmem::Finder<'_>,
    line: &[u8],
    offset: u64,
    lower: &mut Vec<u8>,
    found: &mut Vec<(u64, String)>,
) {
    lower.clear();
    lower.extend(line.iter().map(u8::to_ascii_lowercase));
    if finder.find(lower).is_some() {
        let text = String::from_utf8_lossy(line);
        found.push((offset, text.trim_end_matches(['\n', '\r']).to_owned()));
    }
}

/// `offset` moved back to the start of its line, looking back at most [`MAX_SLICE_BYTES`];
/// `offset` itself when its line starts further back (a line too long to show whole).
fn align_to_line_start(log: &mut (impl LogBytes + ?Sized), offset: u64) -> io::Result<u64> {
    let floor = offset.saturating_sub(MAX_SLICE_BYTES);
    let mut position = offset;
    while position > floor {
        let from = position.saturating_sub(BLOCK).max(floor);
        let block = log.read_at(from, (position - from) as usize)?;
        if let Some(i) = memchr::memrchr(b'\n', &block) {
            return Ok(from + i as u64 + 1);
        }
        position = from;
    }
    Ok(if floor == 0 { 0 } else { offset })
}

fn slice(
    log: &mut (impl LogBytes + ?Sized),
    start: u64,
    end: u64,
    size: u64,
) -> io::Result<LogSlice> {
    let bytes = log.read_at(start, (end - start) as usize)?;
    Ok(LogSlice {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        start,
        end,
        size,
        first_line_cut: None,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    // The readers over a file path, as the tests call them.
    /// The last `lines` lines of the file.
    fn read_tail(path: &Path, lines: usize) -> io::Result<LogSlice> {
        match open(path)? {
            Some((mut file, size)) => tail_of(&mut file, size, lines),
            None => Ok(empty(0)),
        }
    }

    /// The `lines` lines that end just before `offset` (a line start).
    fn read_before(path: &Path, offset: u64, lines: usize) -> io::Result<LogSlice> {
        match open(path)? {
            Some((mut file, size)) => before_of(&mut file, size, offset, lines),
            None => Ok(empty(0)),
        }
    }

    /// At most `lines` lines from the line holding `offset`.
    fn read_from(path: &Path, offset: u64, lines: usize) -> io::Result<LogSlice> {
        match open(path)? {
            Some((mut file, size)) => from_of(&mut file, size, offset, lines),
            None => Ok(empty(0)),
        }
    }

    /// The whole lines appended after `offset` (at most ~4 MB); with `to_end`, a last line
    /// without its newline too (the log is closed and will not grow).
    fn read_new_lines(path: &Path, offset: u64, to_end: bool) -> io::Result<LogSlice> {
        match open(path)? {
            Some((mut file, size)) => new_lines_of(&mut file, size, offset, to_end),
            None => Ok(empty(offset)),
        }
    }

    /// Lines holding `query` (ASCII case-insensitive), at most `limit`, with their offsets.
    fn search(path: &Path, query: &str, limit: usize) -> io::Result<Vec<(u64, String)>> {
        match open(path)? {
            Some((mut file, size)) => search_in(&mut file, size, query, limit),
            None => Ok(Vec::new()),
        }
    }

    fn log_of(lines: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.log");
        let mut file = File::create(&path).unwrap();
        for i in 0..lines {
            writeln!(file, "line {i}").unwrap();
        }
        (dir, path)
    }

    #[test]
    fn a_cut_line_is_measured_or_said_to_be_longer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.log");
        let text = format!("a\n{}\nb\n", "x".repeat(300_000));
        std::fs::write(&path, &text).unwrap();
        let mut bytes = File::open(&path).unwrap();
        let size = text.len() as u64;
        let exact = measure_line(&mut bytes, 150_000, size, MAX_MEASURED_LINE).unwrap();
        assert_eq!(
            exact,
            CutLine {
                bytes: 300_000,
                exact: true
            }
        );
        let longer = measure_line(&mut bytes, 150_000, size, BLOCK).unwrap();
        assert!(!longer.exact && longer.bytes >= 2 * BLOCK && longer.bytes < 300_000);
    }

    #[test]
    fn a_line_longer_than_a_slice_is_cut_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.log");
        let long = 3 * MAX_SLICE_BYTES as usize;
        let mut text = format!("a\nneedle{}\n", "x".repeat(long - 6));
        let b_at = text.len() as u64;
        text.push_str("b\nc\n");
        std::fs::write(&path, &text).unwrap();

        let tail = read_tail(&path, 1000).unwrap();
        assert_eq!((tail.text.as_str(), tail.start), ("b\nc\n", b_at));
        assert!(
            tail.first_line_cut.is_none(),
            "the long line is left out, not cut"
        );

        let earlier = read_before(&path, b_at, 1000).unwrap();
        let whole = CutLine {
            bytes: long as u64,
            exact: true,
        };
        assert_eq!(earlier.first_line_cut, Some(whole), "its whole length");
        assert_eq!(earlier.text.len() as u64, MAX_SLICE_BYTES);
        assert_eq!((earlier.start, earlier.end), (b_at - MAX_SLICE_BYTES, b_at));
        let before_that = read_before(&path, earlier.start, 1000).unwrap();
        assert_eq!(before_that.first_line_cut, Some(whole));
        assert_eq!(
            before_that.end, earlier.start,
            "the line's earlier part comes next"
        );
        assert_eq!(before_that.text.len() as u64, MAX_SLICE_BYTES);

        let found = search(&path, "needle", 10).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 2);
        assert_eq!(found[0].1.len(), MAX_SEARCH_LINE, "only its first bytes");
        assert_eq!(
            search(&path, "c", 10).unwrap(),
            [(b_at + 2, "c".to_owned())]
        );
    }

    #[test]
    fn the_tail_holds_the_last_lines() {
        let (_dir, path) = log_of(10);
        let tail = read_tail(&path, 3).unwrap();
        assert_eq!(tail.text, "line 7\nline 8\nline 9\n");
        assert_eq!(tail.end, tail.size);
        let before = read_before(&path, tail.start, 2).unwrap();
        assert_eq!(before.text, "line 5\nline 6\n");
        assert_eq!(before.end, tail.start);
        let all = read_tail(&path, 100).unwrap();
        assert_eq!(all.start, 0);
    }

    #[test]
    fn the_tail_of_a_log_bigger_than_a_block_is_exact() {
        let (_dir, path) = log_of(50_000);
        let tail = read_tail(&path, 1000).unwrap();
        assert_eq!(tail.text.lines().count(), 1000);
        assert!(tail.text.starts_with("line 49000\n"));
        let before = read_before(&path, tail.start, 1000).unwrap();
        assert!(before.text.starts_with("line 48000\n") && before.text.ends_with("line 48999\n"));
    }

    #[test]
    fn reads_from_an_offset_start_at_its_line() {
        let (_dir, path) = log_of(5);
        let slice = read_from(&path, 9, 2).unwrap();
        assert_eq!((slice.start, slice.text.as_str()), (7, "line 1\nline 2\n"));
    }

    #[test]
    fn new_lines_stop_at_the_last_newline_until_the_log_is_closed() {
        let (_dir, path) = log_of(2);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        write!(file, "partial").unwrap();
        let open = read_new_lines(&path, 7, false).unwrap();
        assert_eq!((open.text.as_str(), open.end), ("line 1\n", 14));
        let closed = read_new_lines(&path, 14, true).unwrap();
        assert_eq!((closed.text.as_str(), closed.end), ("partial", 21));
        assert_eq!(read_new_lines(&path, 21, false).unwrap().text, "");
    }

    #[test]
    fn search_finds_lines_case_insensitively() {
        let (_dir, path) = log_of(12);
        let found = search(&path, "LINE 1", 10).unwrap();
        let offsets: Vec<u64> = found.iter().map(|(o, _)| *o).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].1, "line 1");
        assert_eq!(offsets[0], 7);
        assert_eq!(search(&path, "line", 4).unwrap().len(), 4);
    }

    #[test]
    fn search_finds_lines_cut_by_a_block_boundary() {
        let (_dir, path) = log_of(60_000);
        let found = search(&path, "line 59999", 5).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        let text = std::fs::read_to_string(&path).unwrap();
        let offset = text.find("line 59999").unwrap() as u64;
        assert_eq!(found[0], (offset, "line 59999".to_owned()));
        // Every line is found once, wherever the blocks cut.
        assert_eq!(search(&path, "line", 100_000).unwrap().len(), 60_000);
    }

    #[test]
    fn a_missing_file_reads_empty() {
        let path = Path::new("/nonexistent/updraft/1.log");
        assert_eq!(read_tail(path, 10).unwrap().text, "");
        assert!(search(path, "x", 10).unwrap().is_empty());
    }
}
