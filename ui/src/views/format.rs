//! How times, durations, counts and sizes read on the pages.

use std::fmt;

use chrono::{DateTime, Utc};

/// A moment shown in UTC (the page may switch it to the browser's zone); `–` when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(pub Option<DateTime<Utc>>);

impl Stamp {
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// RFC 3339, for `<time datetime>`.
    pub fn iso(&self) -> String {
        self.0
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(time) => write!(f, "{}", time.format("%Y-%m-%d %H:%M:%S UTC")),
            None => f.write_str("–"),
        }
    }
}

/// `850 ms`, `12.3 s`, `4m 05s`, `2h 03m`; `–` when unknown.
pub fn duration_text(ms: Option<i64>) -> String {
    let Some(ms) = ms.filter(|ms| *ms >= 0) else {
        return "–".into();
    };
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// `n` with a comma between groups of three digits: `20,002` (by reference too, as the
/// templates pass fields).
pub fn thousands(n: impl std::borrow::Borrow<usize>) -> String {
    let digits = n.borrow().to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// A size in bytes in the largest unit that keeps it above 1: `640 B`, `48.0 KB`, `3.2 MB`.
pub fn size_text(bytes: usize) -> String {
    const KB: f64 = 1024.0;
    let bytes_f = bytes as f64;
    if bytes_f < KB {
        format!("{bytes} B")
    } else if bytes_f < KB * KB {
        format!("{:.1} KB", bytes_f / KB)
    } else {
        format!("{:.1} MB", bytes_f / (KB * KB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(20_002), "20,002");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn sizes_read_in_the_largest_unit_above_one() {
        assert_eq!(size_text(640), "640 B");
        assert_eq!(size_text(49_152), "48.0 KB");
        assert_eq!(size_text(3_355_443), "3.2 MB");
    }

    #[test]
    fn durations_read_in_the_largest_sensible_unit() {
        assert_eq!(duration_text(None), "–");
        assert_eq!(duration_text(Some(850)), "850 ms");
        assert_eq!(duration_text(Some(12_345)), "12.3 s");
        assert_eq!(duration_text(Some(245_000)), "4m 05s");
        assert_eq!(duration_text(Some(7_380_000)), "2h 03m");
    }
}
