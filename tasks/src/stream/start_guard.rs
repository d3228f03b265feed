//! Makes sure a partition really resumes at its committed offset.
//!
//! A Kafka broker asked to fetch from an offset inside a record batch returns that whole batch
//! and the client drops the records before the offset. tansu 0.6 returns the batches that
//! *start* at or after the offset instead (`offsets.split_off(&offset)` in its dynostore), so
//! a consumer resuming from a committed offset inside a batch silently misses the rest of that
//! batch (seen in the crash test: resume at 11038, first record 11284, 246 records lost).
//! So a partition is fetched from [`fetch_from`] the committed offset, a little earlier, and
//! the guard skips what comes before the committed offset; when the first record still lands
//! past it, the guard asks to re-read from further back, doubling the distance each time.
//! A partition whose last batch holds the committed offset and more than [`FIRST_REWIND`]
//! records before it gets no answer at all; when nothing came for [`STALL`] while the
//! partition has records past the committed offset, the guard re-reads from further back too.

/// How far back the first re-read starts, in records.
const FIRST_REWIND: i64 = 1_000;

/// How long a guarded partition may stay silent while it has records to give.
pub(super) const STALL: std::time::Duration = std::time::Duration::from_secs(3);

/// What to do with a record of a partition whose start is being verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Process it: the start is verified (or the gap is real).
    Handle,
    /// Before the committed offset: already processed and committed; drop it.
    Skip,
    /// The broker skipped records: seek to this offset and drop this record.
    Rewind(i64),
}

/// Where to fetch a partition that resumes at `committed`: a little earlier, so that the
/// fetch starts at or before the batch holding `committed` (a batch boundary on tansu).
pub(super) fn fetch_from(committed: i64) -> i64 {
    (committed - FIRST_REWIND).max(0)
}

#[derive(Debug, Clone)]
pub(super) struct StartGuard {
    committed: i64,
    rewind: i64,
    /// Whether a record before the committed offset arrived since the last rewind: the
    /// broker then reads contiguously, and a later jump past the committed offset is a real
    /// gap (compaction or retention), not a skipped batch.
    reached_before: bool,
    lowest_asked: i64,
    /// When the partition was last (re)positioned.
    asked_at: std::time::Instant,
}

impl StartGuard {
    /// A guard for a partition resuming at `committed` and fetched from
    /// [`fetch_from`]`(committed)`; none is needed at offset 0.
    pub(super) fn new(committed: i64) -> Option<Self> {
        (committed > 0).then_some(Self {
            committed,
            rewind: FIRST_REWIND.saturating_mul(2),
            reached_before: false,
            lowest_asked: fetch_from(committed),
            asked_at: std::time::Instant::now(),
        })
    }

    pub(super) fn committed(&self) -> i64 {
        self.committed
    }

    /// The verdict on the record at `offset`; after [`Verdict::Handle`] the guard is done.
    pub(super) fn check(&mut self, offset: i64) -> Verdict {
        if offset < self.committed {
            self.reached_before = true;
            return Verdict::Skip;
        }
        if offset == self.committed || self.reached_before || self.lowest_asked == 0 {
            return Verdict::Handle;
        }
        Verdict::Rewind(self.rewind_further())
    }

    /// For a partition that gave nothing since it was positioned: the offset to re-read from
    /// when it was asked to fetch inside a batch (it has records past the committed offset,
    /// `high_watermark`, yet stayed silent for [`STALL`]).
    pub(super) fn check_stalled(&mut self, high_watermark: Option<i64>) -> Option<i64> {
        let has_records = high_watermark.is_some_and(|high| high > self.committed);
        (has_records
            && !self.reached_before
            && self.lowest_asked > 0
            && self.asked_at.elapsed() >= STALL)
            .then(|| self.rewind_further())
    }

    /// The next offset to re-read from: twice as far back as the last.
    fn rewind_further(&mut self) -> i64 {
        let back = (self.committed - self.rewind).max(0);
        self.rewind = self.rewind.saturating_mul(2);
        self.lowest_asked = back;
        self.asked_at = std::time::Instant::now();
        back
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_before_the_committed_offset_are_skipped_then_handled() {
        assert_eq!(fetch_from(11_038), 10_038);
        assert_eq!(fetch_from(400), 0);
        let mut guard = StartGuard::new(11_038).unwrap();
        assert_eq!(guard.check(10_100), Verdict::Skip);
        assert_eq!(guard.check(11_037), Verdict::Skip);
        assert_eq!(guard.check(11_038), Verdict::Handle);
        assert!(StartGuard::new(0).is_none());
    }

    #[test]
    fn a_skipped_batch_is_re_read_from_further_back() {
        let mut guard = StartGuard::new(11_038).unwrap();
        // Fetched from 10,038, the broker still answered past 11,038: go back twice as far.
        assert_eq!(guard.check(11_284), Verdict::Rewind(9_038));
        assert_eq!(guard.check(11_284), Verdict::Rewind(7_038));
        assert_eq!(guard.check(7_100), Verdict::Skip);
        assert_eq!(guard.check(11_038), Verdict::Handle);
    }

    #[test]
    fn a_silent_partition_with_records_is_re_read_from_further_back() {
        let mut guard = StartGuard::new(1_500).unwrap();
        guard.asked_at -= STALL;
        assert_eq!(
            guard.check_stalled(Some(1_500)),
            None,
            "nothing to read yet"
        );
        assert_eq!(guard.check_stalled(None), None, "no report yet");
        assert_eq!(guard.check_stalled(Some(2_000)), Some(0));
        assert_eq!(guard.check_stalled(Some(2_000)), None, "just asked again");
        assert_eq!(guard.check(0), Verdict::Skip);
        assert_eq!(guard.check(1_500), Verdict::Handle);
        let mut fresh = StartGuard::new(1_500).unwrap();
        assert_eq!(
            fresh.check_stalled(Some(2_000)),
            None,
            "not silent for long yet"
        );
    }

    #[test]
    fn a_real_gap_is_accepted() {
        // Records before the committed offset arrived, then a jump: the gap is in the log.
        let mut guard = StartGuard::new(3_000).unwrap();
        assert_eq!(guard.check(2_500), Verdict::Skip);
        assert_eq!(guard.check(3_020), Verdict::Handle);
        // Everything up to the start is gone (retention): accepted once offset 0 was asked.
        let mut guard = StartGuard::new(300).unwrap();
        assert_eq!(guard.check(900), Verdict::Handle);
        let mut guard = StartGuard::new(1_500).unwrap();
        assert_eq!(guard.check(1_900), Verdict::Rewind(0));
        assert_eq!(guard.check(1_900), Verdict::Handle);
    }
}
