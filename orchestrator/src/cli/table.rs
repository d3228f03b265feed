//! Plain aligned text tables for the terminal.

use std::{
    io::{BufWriter, Write as _},
    sync::LazyLock,
};

use chrono::format::{Item, StrftimeItems};

/// Prints the headers and rows with each column as wide as its widest cell, through one
/// buffered, locked stdout (a run's table can have thousands of rows).
pub fn print(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut line = String::new();
    let mut write_line = |cells: &mut dyn Iterator<Item = &str>| {
        line.clear();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let padding = width.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', padding));
        }
        // A closed stdout (`| head`) ends the table quietly where println! would panic.
        let _ = writeln!(out, "{}", line.trim_end());
    };
    write_line(&mut headers.iter().copied());
    for row in rows {
        write_line(&mut row.iter().map(String::as_str));
    }
    let _ = out.flush();
}

/// `2026-12-06 18:00:00.123`, or `-`.
pub fn time(value: Option<chrono::DateTime<chrono::Utc>>) -> String {
    static PATTERN: LazyLock<Vec<Item<'static>>> =
        LazyLock::new(|| StrftimeItems::new("%Y-%m-%d %H:%M:%S%.3f").collect());
    value
        .map(|t| t.format_with_items(PATTERN.iter()).to_string())
        .unwrap_or_else(|| "-".into())
}
