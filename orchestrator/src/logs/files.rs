//! One thread creates every try's log file and writes its lines. Tries run on the async
//! runtime's workers, and a folder, a file and two lines per try (the layout then) written
//! from each worker at once cost ~700 us of kernel time per try on ext4 (the two workers
//! contending on the file system), against ~70 us written one after the other; a worker
//! blocked in the file system is also a worker not running tasks. The thread takes whatever
//! is waiting in one go and writes each file's new lines once per go, so lines reach the file
//! within one go of being written. A try's close writes what the thread has not yet written
//! and closes the file on the try's own thread: waiting for the log thread to wake and answer
//! was ~25 us, about a tenth, of every hand-off between tasks (BENCHMARKS.md).

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, mpsc},
};

use tokio::sync::{broadcast, oneshot};

use super::LogLine;

/// A file open for a try: its handle and the thread both write it, under its lock.
type SharedFile = Arc<Mutex<OpenFile>>;

enum Op {
    /// Creates (or appends to) a file; answers with it and its length before this open.
    Open {
        path: PathBuf,
        opened: oneshot::Sender<io::Result<(SharedFile, u64)>>,
    },
    /// Lines were added to the file's buffer: write them.
    Flush(SharedFile),
}

/// Sends file work to the writer thread; cheap to clone. The thread ends with the last clone.
#[derive(Clone)]
pub(super) struct FileWriter {
    ops: mpsc::Sender<Op>,
}

/// One open file: lines go into its buffer, which the thread writes; closing writes what is
/// left and closes it on the caller's thread, so a try's end waits on no other thread.
pub(super) struct FileHandle {
    writer: FileWriter,
    file: SharedFile,
}

impl FileWriter {
    pub fn start() -> Self {
        let (ops, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("updraft-task-logs".into())
            .spawn(move || write_files(&receiver))
            .expect("cannot start the task log thread");
        Self { ops }
    }

    /// Creates the file at `path` (and its folders), or opens it to append; returns it and its
    /// length so far.
    pub async fn open(&self, path: PathBuf) -> io::Result<(FileHandle, u64)> {
        let (opened, answer) = oneshot::channel();
        self.send(Op::Open { path, opened })?;
        let (file, length) = answer.await.map_err(|_| stopped())??;
        let handle = FileHandle {
            writer: self.clone(),
            file,
        };
        Ok((handle, length))
    }

    fn send(&self, op: Op) -> io::Result<()> {
        self.ops.send(op).map_err(|_| stopped())
    }
}

impl FileHandle {
    /// Queues a whole line (its newline included); the thread writes it with the rest of its
    /// go. It goes to the live feed (if any, and followed) once it is in the file.
    pub fn line(&self, text: &str) -> io::Result<()> {
        let first_unwritten = lock(&self.file).write(text);
        // The thread is told once per batch: later lines join the buffer it has yet to write.
        if first_unwritten {
            self.writer.send(Op::Flush(self.file.clone()))?;
        }
        Ok(())
    }

    /// Writes every line queued so far and closes the file, on this thread: no line the
    /// thread has not written yet waits for it.
    pub fn close(&self) {
        lock(&self.file).close();
    }

    /// Where the file's lines are announced once written: `live`, as lines of `template`.
    pub fn announce_to(&self, live: broadcast::Sender<LogLine>, template: LogLine) {
        lock(&self.file).announce = Some(Announce {
            live,
            template,
            lines: Vec::new(),
        });
    }
}

impl Drop for FileHandle {
    /// Closes the file if [`FileHandle::close`] did not (closing twice is harmless).
    fn drop(&mut self) {
        self.close();
    }
}

fn lock(file: &SharedFile) -> MutexGuard<'_, OpenFile> {
    file.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn stopped() -> io::Error {
    io::Error::other("the task log thread has stopped")
}

/// The most operations one go takes before it flushes.
const MAX_GO: usize = 4096;

/// The largest buffer an open file keeps from one go to the next.
const MAX_KEPT_BUFFER: usize = 64 * 1024;

fn write_files(receiver: &mpsc::Receiver<Op>) {
    let mut written: Vec<SharedFile> = Vec::new();
    while let Ok(first) = receiver.recv() {
        let mut op = Some(first);
        let mut taken = 0;
        while let Some(next) = op {
            match next {
                Op::Open { path, opened } => {
                    let outcome = OpenFile::open(path)
                        .map(|(file, length)| (Arc::new(Mutex::new(file)), length));
                    let _ = opened.send(outcome);
                }
                Op::Flush(file) => written.push(file),
            }
            taken += 1;
            op = if taken < MAX_GO {
                receiver.try_recv().ok()
            } else {
                None
            };
        }
        for file in written.drain(..) {
            lock(&file).flush();
        }
    }
}

/// A file the thread writes, and its lines not yet flushed. They are kept in a buffer that
/// grows to what one go writes, not in a `BufWriter`: its 8 KB buffer, taken and freed for
/// every try, made the allocator hand a page back to the system (`madvise`) on most closes.
struct OpenFile {
    path: PathBuf,
    /// None once closed.
    file: Option<File>,
    unflushed: Vec<u8>,
    /// Whether a failed write was reported already (once per file).
    failed: bool,
    announce: Option<Announce>,
}

/// The live feed of a file's lines: each is sent once it is in the file, so a follower that
/// hears of a line and reads the file finds it there.
struct Announce {
    live: broadcast::Sender<LogLine>,
    template: LogLine,
    /// Lines written to the buffer and not yet to the file, without their newlines.
    lines: Vec<String>,
}

impl OpenFile {
    fn open(path: PathBuf) -> io::Result<(Self, u64)> {
        // A new try's file is new: its length is known without asking. Its run's folder is
        // made by its first try (asking for it on every try cost two more system calls).
        let create = || OpenOptions::new().create_new(true).append(true).open(&path);
        let created = match create() {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if let Some(folder) = path.parent() {
                    std::fs::create_dir_all(folder)?;
                }
                create()
            }
            created => created,
        };
        let (file, length) = match created {
            Ok(file) => (file, 0),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                let file = OpenOptions::new().append(true).open(&path)?;
                let length = file.metadata()?.len();
                (file, length)
            }
            Err(error) => return Err(error),
        };
        let open = Self {
            path,
            file: Some(file),
            unflushed: Vec::new(),
            failed: false,
            announce: None,
        };
        Ok((open, length))
    }

    /// Adds a line to write (none once the file is closed); true when it is the first the
    /// thread has yet to write. A line is kept for the feed only while someone follows it.
    fn write(&mut self, text: &str) -> bool {
        if self.file.is_none() {
            return false;
        }
        let first = self.unflushed.is_empty();
        self.unflushed.extend_from_slice(text.as_bytes());
        if let Some(feed) = self
            .announce
            .as_mut()
            .filter(|feed| feed.live.receiver_count() > 0)
        {
            feed.lines.push(text.trim_end_matches('\n').to_owned());
        }
        first
    }

    fn flush(&mut self) {
        // A closed file has nothing left to write: `write` takes no line after the close.
        let Some(file) = &mut self.file else {
            return;
        };
        if self.unflushed.is_empty() {
            return;
        }
        let flushed = file.write_all(&self.unflushed);
        self.unflushed.clear();
        // A long-running task's file keeps no more than a small buffer between goes.
        if self.unflushed.capacity() > MAX_KEPT_BUFFER {
            self.unflushed = Vec::new();
        }
        self.report(flushed);
        if let Some(feed) = &mut self.announce {
            for text in feed.lines.drain(..) {
                let _ = feed.live.send(LogLine {
                    text,
                    ..feed.template.clone()
                });
            }
        }
    }

    /// Writes what is left and closes the file.
    fn close(&mut self) {
        self.flush();
        self.file = None;
        self.unflushed = Vec::new();
    }

    fn report(&mut self, outcome: io::Result<()>) {
        if let Err(error) = outcome
            && !std::mem::replace(&mut self.failed, true)
        {
            tracing::warn!(%error, path = %self.path.display(), "Cannot write the task log");
        }
    }
}

/// The log thread held in the open of a FIFO (which blocks until someone reads it): what it
/// is asked meanwhile waits, until [`Held::release`].
#[cfg(test)]
pub(super) struct Held {
    fifo: tempfile::TempDir,
    opened: oneshot::Receiver<io::Result<(SharedFile, u64)>>,
}

#[cfg(test)]
impl FileWriter {
    /// Holds the thread (see [`Held`]) once the operations sent before this are done.
    pub(super) fn hold(&self, dir: &std::path::Path) -> Held {
        let fifo = tempfile::tempdir_in(dir).unwrap();
        let path = fifo.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success(), "mkfifo failed");
        let (opened, answer) = oneshot::channel();
        self.send(Op::Open { path, opened }).unwrap();
        Held {
            fifo,
            opened: answer,
        }
    }
}

#[cfg(test)]
impl Held {
    /// Lets the thread go on.
    pub(super) async fn release(self) {
        let reader = File::open(self.fifo.path().join("fifo")).unwrap();
        assert_eq!(self.opened.await.unwrap().unwrap().1, 0);
        drop(reader);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_opened_again_is_appended_to_from_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dag/run/task/1.log");
        let writer = FileWriter::start();
        let (first, length) = writer.open(path.clone()).await.unwrap();
        assert_eq!(length, 0);
        first.line("one\n").unwrap();
        first.close();
        let (again, length) = writer.open(path.clone()).await.unwrap();
        assert_eq!(length, 4);
        again.line("two\n").unwrap();
        again.line("three\n").unwrap();
        again.close();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
    }

    #[tokio::test]
    async fn a_close_writes_every_line_while_the_thread_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dag/run/task/1.log");
        let writer = FileWriter::start();
        let (file, _) = writer.open(path.clone()).await.unwrap();
        let held = writer.hold(dir.path());
        file.line("one\n").unwrap();
        file.line("two\n").unwrap();
        file.close();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        // A line after the close is dropped: the file is complete.
        file.line("late\n").unwrap();
        held.release().await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
    }
}
