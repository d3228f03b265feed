//! Event-time windows: which windows a moment falls in, and the watermark that closes them.

/// Window geometry in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Windows {
    pub size_ms: i64,
    /// Equal to `size_ms` for tumbling windows.
    pub slide_ms: i64,
}

impl Windows {
    /// Starts of every window containing `time_ms`, oldest first.
    pub(super) fn starts(&self, time_ms: i64) -> Vec<i64> {
        let last = time_ms.div_euclid(self.slide_ms) * self.slide_ms;
        let mut starts = Vec::new();
        let mut start = last;
        while start > time_ms - self.size_ms {
            starts.push(start);
            start -= self.slide_ms;
        }
        starts.reverse();
        starts
    }
}

/// The newest event time seen minus the allowed lateness: a window ending at or before it
/// is closed, and a record for it is late.
#[derive(Debug, Clone, Copy)]
pub(super) struct Watermark {
    lateness_ms: i64,
    max_event_ms: Option<i64>,
}

impl Watermark {
    pub(super) fn new(lateness_ms: i64) -> Self {
        Self {
            lateness_ms,
            max_event_ms: None,
        }
    }

    /// Restores the watermark persisted by an earlier run of the task.
    pub(super) fn resume(lateness_ms: i64, watermark_ms: Option<i64>) -> Self {
        Self {
            lateness_ms,
            max_event_ms: watermark_ms.map(|w| w + lateness_ms),
        }
    }

    pub(super) fn observe(&mut self, event_ms: i64) {
        self.max_event_ms = Some(self.max_event_ms.map_or(event_ms, |m| m.max(event_ms)));
    }

    pub(super) fn value(&self) -> Option<i64> {
        self.max_event_ms.map(|m| m - self.lateness_ms)
    }

    /// Whether the window ending at `end_ms` is closed.
    pub(super) fn closes(&self, end_ms: i64) -> bool {
        self.value().is_some_and(|w| end_ms <= w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_windows_hold_each_moment_once() {
        let minute = Windows {
            size_ms: 60_000,
            slide_ms: 60_000,
        };
        assert_eq!(minute.starts(0), [0]);
        assert_eq!(minute.starts(59_999), [0]);
        assert_eq!(minute.starts(60_000), [60_000]);
        assert_eq!(minute.starts(-1), [-60_000]);
    }

    #[test]
    fn sliding_windows_overlap() {
        let sliding = Windows {
            size_ms: 60_000,
            slide_ms: 20_000,
        };
        assert_eq!(sliding.starts(65_000), [20_000, 40_000, 60_000]);
        assert_eq!(sliding.starts(60_000), [20_000, 40_000, 60_000]);
        assert_eq!(sliding.starts(59_999), [0, 20_000, 40_000]);
    }

    #[test]
    fn the_watermark_trails_the_newest_event_by_the_lateness() {
        let mut watermark = Watermark::new(10_000);
        assert!(!watermark.closes(i64::MIN + 1));
        watermark.observe(70_000);
        watermark.observe(65_000);
        assert_eq!(watermark.value(), Some(60_000));
        assert!(watermark.closes(60_000));
        assert!(!watermark.closes(60_001));
        let resumed = Watermark::resume(10_000, watermark.value());
        assert_eq!(resumed.value(), Some(60_000));
    }
}
