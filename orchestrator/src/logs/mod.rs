//! Task logs: one file per try at `<root>/<dag>/<run>/<task>.<try>.log`, written line by line,
//! and a live feed of new lines for followers (the CLI's `run`, the UI's log tail), with a
//! notice when a try's log is closed for good.

mod files;
mod mask;
mod read;
mod ship;
mod source;

pub use mask::{MIN_SECRET_LEN, Secrets, is_secret_name, task_secrets};
pub use read::{CutLine, LogSlice};
pub use source::{LogPart, LogSource};

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use tokio::sync::broadcast;

use crate::store::Store;

/// One line written to a try's log.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub dag_id: Arc<str>,
    pub run_id: Arc<str>,
    pub task_id: Arc<str>,
    pub try_number: u32,
    /// The line as written to the file, timestamp first.
    pub text: String,
}

/// Names one try's log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TryLogKey {
    pub dag_id: Arc<str>,
    pub run_id: Arc<str>,
    pub task_id: Arc<str>,
    pub try_number: u32,
}

impl LogLine {
    /// Whether the line belongs to the try `key`.
    pub fn is_of(&self, key: &TryLogKey) -> bool {
        self.try_number == key.try_number
            && self.task_id == key.task_id
            && self.run_id == key.run_id
            && self.dag_id == key.dag_id
    }
}

/// Opens try logs and carries their live feed.
#[derive(Clone)]
pub struct LogHub {
    root: PathBuf,
    live: broadcast::Sender<LogLine>,
    closed: broadcast::Sender<TryLogKey>,
    /// Ships every try's lines to a shared database (workers, serve on PostgreSQL).
    ship_to: Option<ship::Hub>,
    files: files::FileWriter,
    /// Masked in every line written.
    secrets: Secrets,
}

impl LogHub {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            live: broadcast::channel(4096).0,
            closed: broadcast::channel(256).0,
            ship_to: None,
            files: files::FileWriter::start(),
            secrets: Secrets::default(),
        }
    }

    /// Masks `secrets` as `***` in every line written from now on.
    pub fn masking(mut self, secrets: Secrets) -> Self {
        self.secrets = secrets;
        self
    }

    /// Ships every try's log to `store` as well when other processes share it, so that any
    /// `serve` can show a try run anywhere.
    pub fn shipping_to(mut self, store: &Store) -> Self {
        if store.is_shared() {
            self.ship_to = Some(ship::Hub::start(store.clone()));
        }
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates (or appends to) the log file of one try.
    pub async fn open_try(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        try_number: u32,
    ) -> std::io::Result<TryLog> {
        let path = try_log_path(&self.root, dag_id, run_id, task_id, try_number);
        let (file, length) = self.files.open(path).await?;
        let shipper = self.ship_to.as_ref().map(|hub| {
            let key = TryLogKey {
                dag_id: dag_id.into(),
                run_id: run_id.into(),
                task_id: task_id.into(),
                try_number,
            };
            hub.for_try(key, length)
        });
        let template = LogLine {
            dag_id: dag_id.into(),
            run_id: run_id.into(),
            task_id: task_id.into(),
            try_number,
            text: String::new(),
        };
        file.announce_to(self.live.clone(), template.clone());
        Ok(TryLog {
            shipper,
            file: Mutex::new(file),
            template,
            closed: self.closed.clone(),
            secrets: self.secrets.clone(),
            try_secrets: OnceLock::new(),
        })
    }

    /// Every line written from now on, by any try (filter on the fields).
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.live.subscribe()
    }

    /// The tries whose logs are closed from now on (nothing more will be written to them by
    /// this process).
    pub fn subscribe_closed(&self) -> broadcast::Receiver<TryLogKey> {
        self.closed.subscribe()
    }
}

/// The longest file name ext4, XFS and btrfs take, in bytes.
const MAX_FILE_NAME: usize = 255;

/// Where a try's log is written: `<root>/<dag>/<run>/<task>.<try>.log`. The run's tries share
/// its folder: a folder per task cost the file system more than the try's file (BENCHMARKS.md).
/// A task id too long for that name (ids may take 250 bytes) keeps a folder of its own:
/// `<task>/<try>.log`.
pub fn try_log_path(
    root: &Path,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    try_number: u32,
) -> PathBuf {
    let run = root.join(dag_id).join(run_id);
    let name = format!("{task_id}.{try_number}.log");
    if name.len() <= MAX_FILE_NAME {
        run.join(name)
    } else {
        folder_per_task(&run, task_id, try_number)
    }
}

fn folder_per_task(run: &Path, task_id: &str, try_number: u32) -> PathBuf {
    run.join(task_id).join(format!("{try_number}.log"))
}

/// Where a try's log is read: its file, or the one releases before 2026-12-07 wrote
/// (`<root>/<dag>/<run>/<task>/<try>.log`) when only that one exists.
pub fn try_log_to_read(root: &Path, key: &TryLogKey) -> PathBuf {
    let path = try_log_path(root, &key.dag_id, &key.run_id, &key.task_id, key.try_number);
    if path.exists() {
        return path;
    }
    let run = root.join(&*key.dag_id).join(&*key.run_id);
    let earlier = folder_per_task(&run, &key.task_id, key.try_number);
    if earlier.exists() { earlier } else { path }
}

/// The log of one try: each line goes to the file (through the log thread) and, when
/// shipping, to the shared database; live followers hear of it once it is in the file.
pub struct TryLog {
    shipper: Option<ship::Shipper>,
    /// Locked while a line is queued for the file and the shipper, so both take lines in
    /// the same order.
    file: Mutex<files::FileHandle>,
    secrets: Secrets,
    /// The hub's secrets and the try's own, once the try's config is rendered.
    try_secrets: OnceLock<Secrets>,
    template: LogLine,
    closed: broadcast::Sender<TryLogKey>,
}

impl TryLog {
    /// Masks the try's own secret `values` too, in every line written from now on (once per
    /// try: its config is rendered once).
    pub fn mask_also(&self, values: Vec<String>) {
        if !values.is_empty() {
            let _ = self.try_secrets.set(self.secrets.with(values));
        }
    }

    /// Waits until every line written so far is in the file and shipped (when shipping): a
    /// try's end is recorded only after its log is complete everywhere.
    pub async fn finish(&self) {
        match self.file.lock() {
            Ok(file) => file.close(),
            Err(_) => tracing::warn!(task_id = %self.template.task_id, "The task log is poisoned"),
        }
        if let Some(shipper) = &self.shipper {
            shipper.finish().await;
        }
    }
}

impl Drop for TryLog {
    fn drop(&mut self) {
        // Every line in the file (and announced) before the notice that the log is closed.
        if let Ok(file) = self.file.lock() {
            file.close();
        }
        if self.closed.receiver_count() > 0 {
            let _ = self.closed.send(TryLogKey {
                dag_id: self.template.dag_id.clone(),
                run_id: self.template.run_id.clone(),
                task_id: self.template.task_id.clone(),
                try_number: self.template.try_number,
            });
        }
    }
}

impl tasks::LogSink for TryLog {
    fn line(&self, line: &str) {
        let line = self.try_secrets.get().unwrap_or(&self.secrets).mask(line);
        // RFC 3339 in milliseconds; `format` with a pattern parsed the pattern on every line.
        let mut entry = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        entry.reserve(line.len() + 2);
        entry.push(' ');
        entry.push_str(&line);
        entry.push('\n');
        match self.file.lock() {
            Ok(file) => {
                // Under the file's lock: shipped in the order written.
                if let Some(shipper) = &self.shipper {
                    shipper.push(&entry);
                }
                // Followers hear of the line once it is in the file.
                if let Err(error) = file.line(&entry) {
                    tracing::warn!(%error, task_id = %self.template.task_id, "Cannot write the task log");
                }
            }
            Err(_) => tracing::warn!(task_id = %self.template.task_id, "The task log is poisoned"),
        }
    }
}

#[cfg(test)]
mod tests {
    use tasks::LogSink;

    use super::*;

    #[tokio::test]
    async fn lines_reach_the_file_and_live_followers() {
        let root = tempfile::tempdir().unwrap();
        let hub = LogHub::new(root.path());
        let mut live = hub.subscribe();
        let log = hub.open_try("d", "manual__1", "t", 2).await.unwrap();
        log.line("hello");
        log.line("world");
        log.finish().await;
        let text = std::fs::read_to_string(root.path().join("d/manual__1/t.2.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].ends_with(" hello") && lines[1].ends_with(" world"),
            "{text}"
        );
        let first = live.recv().await.unwrap();
        assert_eq!((&*first.task_id, first.try_number), ("t", 2));
        assert!(first.text.ends_with("hello"));
    }

    #[test]
    fn a_log_in_the_earlier_layout_is_still_read() {
        let root = tempfile::tempdir().unwrap();
        let key = TryLogKey {
            dag_id: "d".into(),
            run_id: "manual__1".into(),
            task_id: "t".into(),
            try_number: 3,
        };
        let written = root.path().join("d/manual__1/t.3.log");
        assert_eq!(try_log_path(root.path(), "d", "manual__1", "t", 3), written);
        // Neither exists yet: a follower waits on the file a try would write.
        assert_eq!(try_log_to_read(root.path(), &key), written);
        let earlier = root.path().join("d/manual__1/t/3.log");
        std::fs::create_dir_all(earlier.parent().unwrap()).unwrap();
        std::fs::write(&earlier, "written before the layout changed\n").unwrap();
        assert_eq!(try_log_to_read(root.path(), &key), earlier);
        std::fs::write(&written, "").unwrap();
        assert_eq!(try_log_to_read(root.path(), &key), written);
    }

    #[tokio::test]
    async fn a_task_id_too_long_for_a_file_name_keeps_a_folder() {
        let root = tempfile::tempdir().unwrap();
        let hub = LogHub::new(root.path());
        // The longest id a DAG file may give, as an instance of a task with parallelism.
        let task_id = format!("{}~12", "t".repeat(250));
        let log = hub.open_try("d", "manual__1", &task_id, 7).await.unwrap();
        log.line("long");
        log.finish().await;
        let path = root.path().join("d/manual__1").join(&task_id).join("7.log");
        assert_eq!(
            try_log_path(root.path(), "d", "manual__1", &task_id, 7),
            path
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with(" long\n"), "{text:?}");
        let key = TryLogKey {
            dag_id: "d".into(),
            run_id: "manual__1".into(),
            task_id: task_id.as_str().into(),
            try_number: 7,
        };
        assert_eq!(try_log_to_read(root.path(), &key), path);
    }

    #[tokio::test]
    async fn a_log_that_cannot_be_created_is_an_error_at_open() {
        let root = tempfile::tempdir().unwrap();
        let blocker = root.path().join("d");
        std::fs::write(&blocker, "a file where the DAG's folder would be").unwrap();
        let hub = LogHub::new(root.path());
        let error = hub.open_try("d", "manual__1", "t", 1).await.err().unwrap();
        assert_ne!(error.kind(), std::io::ErrorKind::Other, "{error}");
        // The thread goes on with the next try.
        let log = hub.open_try("e", "manual__1", "t", 1).await.unwrap();
        log.line("after");
        log.finish().await;
        let text = std::fs::read_to_string(root.path().join("e/manual__1/t.1.log")).unwrap();
        assert!(text.ends_with(" after\n"), "{text:?}");
    }

    #[tokio::test]
    async fn secrets_are_masked_in_the_file_and_the_live_feed() {
        let root = tempfile::tempdir().unwrap();
        let hub = LogHub::new(root.path()).masking(Secrets::new(["s3cret-pw".to_string()]));
        let mut live = hub.subscribe();
        let log = hub.open_try("d", "manual__1", "t", 1).await.unwrap();
        log.line("DATABASE_URL=postgres://app:s3cret-pw@db/updraft");
        log.finish().await;
        let text = std::fs::read_to_string(root.path().join("d/manual__1/t.1.log")).unwrap();
        assert!(
            text.ends_with(" DATABASE_URL=postgres://app:***@db/updraft\n"),
            "{text:?}"
        );
        assert!(!live.recv().await.unwrap().text.contains("s3cret"));
    }

    #[tokio::test]
    async fn followers_hear_of_a_line_once_it_is_in_the_file() {
        let root = tempfile::tempdir().unwrap();
        let hub = LogHub::new(root.path());
        let mut live = hub.subscribe();
        let log = hub.open_try("d", "manual__1", "t", 1).await.unwrap();
        let held = hub.files.hold(root.path());
        log.line("hello");
        let file = root.path().join("d/manual__1/t.1.log");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
        assert!(
            live.try_recv().is_err(),
            "announced before it is in the file"
        );
        log.finish().await;
        assert!(live.try_recv().unwrap().text.ends_with(" hello"));
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .ends_with(" hello\n")
        );
        held.release().await;
    }
}
