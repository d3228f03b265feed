//! A try's log page.

use askama::Template;

use super::Chrome;
use crate::{
    ids::TryKey,
    views::{LogChunk, LogMatch, TaskInstanceView, logs::highlight},
};

/// A log line as shown: its offset (anchor), its time stamp and the rest.
pub struct LogLineView {
    pub offset: u64,
    pub time: String,
    pub text: String,
}

/// A search hit cut into highlighted parts.
pub struct MatchView {
    pub offset: u64,
    pub time: String,
    pub parts: Vec<(String, bool)>,
}

#[derive(Template)]
#[template(path = "tasks/log.html")]
pub struct LogPage {
    pub chrome: Chrome,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: u32,
    pub tries: Vec<u32>,
    pub state: String,
    pub lines: Vec<LogLineView>,
    pub start: u64,
    pub end: u64,
    pub size: u64,
    pub finished: bool,
    pub first_line_cut: Option<crate::views::CutLine>,
    pub search: String,
    pub matches: Option<Vec<MatchView>>,
    pub at: Option<u64>,
}

/// `2026-11-25T10:00:00.123Z text` -> (`10:00:00.123`, `text`).
fn split_stamp(line: &str) -> (String, String) {
    let bytes = line.as_bytes();
    let stamped = bytes.len() >= 25
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[23] == b'Z'
        && bytes[24] == b' '
        && line.is_char_boundary(25);
    if stamped {
        (line[11..23].to_owned(), line[25..].to_owned())
    } else {
        (String::new(), line.to_owned())
    }
}

impl LogPage {
    pub fn new(
        chrome: Chrome,
        key: TryKey,
        ti: &TaskInstanceView,
        chunk: LogChunk,
        search: Option<String>,
        matches: Option<Vec<LogMatch>>,
        at: Option<u64>,
    ) -> Self {
        let latest = ti.try_number.max(key.try_number);
        let search = search.unwrap_or_default();
        let lines = chunk
            .lines()
            .into_iter()
            .map(|(offset, line)| {
                let (time, text) = split_stamp(line);
                LogLineView { offset, time, text }
            })
            .collect();
        let matches = matches.map(|found| {
            found
                .into_iter()
                .map(|m| {
                    let (time, text) = split_stamp(&m.line);
                    MatchView {
                        offset: m.offset,
                        time,
                        parts: highlight(&text, &search),
                    }
                })
                .collect()
        });
        Self {
            chrome,
            dag_id: key.task.run.dag_id.to_string(),
            run_id: key.task.run.run_id.clone(),
            task_id: key.task.task_id.clone(),
            try_number: key.try_number,
            tries: (1..=latest).collect(),
            state: ti.state.clone(),
            lines,
            start: chunk.start,
            end: chunk.end,
            size: chunk.size,
            finished: chunk.finished,
            first_line_cut: chunk.first_line_cut,
            search,
            matches,
            at,
        }
    }

    pub fn base(&self) -> String {
        format!(
            "/dags/{}/runs/{}/tasks/{}/logs/{}",
            self.dag_id, self.run_id, self.task_id, self.try_number
        )
    }

    pub fn try_href(&self, try_number: &u32) -> String {
        format!(
            "/dags/{}/runs/{}/tasks/{}/logs/{try_number}",
            self.dag_id, self.run_id, self.task_id
        )
    }

    pub fn at_text(&self) -> String {
        self.at.map(|a| a.to_string()).unwrap_or_default()
    }
}
