//! One thread creates and writes every try's log file. Tries run on the async runtime's
//! workers, and a folder, a file and two lines per try written from each worker at once cost
//! ~700 us of kernel time per try on ext4 (the two workers contending on the file system),
//! against ~70 us written one after the other; a worker blocked in the file system is also
//! a worker not running tasks. The thread takes whatever is waiting in one go and flushes
//! each file it wrote once per go, so lines reach the file within one go of being written.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{self, Write},
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use tokio::sync::oneshot;

enum Op {
    /// Creates (or appends to) a file; answers with its length before this open.
    Open {
        id: u64,
        path: PathBuf,
        opened: oneshot::Sender<io::Result<u64>>,
    },
    /// A whole line, its newline included.
    Line { id: u64, text: String },
    /// Flushes and closes the file; answers once its lines are in it.
    Close {
        id: u64,
        closed: Option<oneshot::Sender<()>>,
    },
}

/// Sends file work to the writer thread; cheap to clone. The thread ends with the last clone.
#[derive(Clone)]
pub(super) struct FileWriter {
    ops: mpsc::Sender<Op>,
    next_id: std::sync::Arc<AtomicU64>,
}

/// One open file of the writer thread.
pub(super) struct FileHandle {
    writer: FileWriter,
    id: u64,
}

impl FileWriter {
    pub fn start() -> Self {
        let (ops, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("updraft-task-logs".into())
            .spawn(move || write_files(&receiver))
            .expect("cannot start the task log thread");
        Self {
            ops,
            next_id: std::sync::Arc::new(AtomicU64::new(0)),
        }
    }

    /// Creates the file at `path` (and its folders), or opens it to append; returns it and its
    /// length so far.
    pub async fn open(&self, path: PathBuf) -> io::Result<(FileHandle, u64)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (opened, answer) = oneshot::channel();
        self.send(Op::Open { id, path, opened })?;
        let length = answer.await.map_err(|_| stopped())??;
        let handle = FileHandle {
            writer: self.clone(),
            id,
        };
        Ok((handle, length))
    }

    fn send(&self, op: Op) -> io::Result<()> {
        self.ops.send(op).map_err(|_| stopped())
    }
}

impl FileHandle {
    /// Queues a whole line (its newline included).
    pub fn line(&self, text: String) -> io::Result<()> {
        self.writer.send(Op::Line { id: self.id, text })
    }

    /// Closes the file; the future ends once every line queued before is in it.
    pub fn close(&self) -> impl Future<Output = ()> + use<> {
        let (closed, done) = oneshot::channel();
        let op = Op::Close {
            id: self.id,
            closed: Some(closed),
        };
        let sent = self.writer.send(op).is_ok();
        async move {
            if sent {
                let _ = done.await;
            }
        }
    }
}

impl Drop for FileHandle {
    /// Closes the file if [`FileHandle::close`] did not (closing twice is harmless).
    fn drop(&mut self) {
        let _ = self.writer.send(Op::Close {
            id: self.id,
            closed: None,
        });
    }
}

fn stopped() -> io::Error {
    io::Error::other("the task log thread has stopped")
}

/// The most operations one go takes before it flushes.
const MAX_GO: usize = 4096;

/// The largest buffer an open file keeps from one go to the next.
const MAX_KEPT_BUFFER: usize = 64 * 1024;

fn write_files(receiver: &mpsc::Receiver<Op>) {
    let mut files: HashMap<u64, OpenFile> = HashMap::new();
    while let Ok(first) = receiver.recv() {
        let mut op = Some(first);
        let mut taken = 0;
        while let Some(next) = op {
            match next {
                Op::Open { id, path, opened } => {
                    let outcome = OpenFile::open(path);
                    let _ = opened.send(
                        outcome
                            .as_ref()
                            .map(|(_, length)| *length)
                            .map_err(|error| io::Error::new(error.kind(), error.to_string())),
                    );
                    if let Ok((file, _)) = outcome {
                        files.insert(id, file);
                    }
                }
                Op::Line { id, text } => {
                    if let Some(file) = files.get_mut(&id) {
                        file.write(&text);
                    }
                }
                Op::Close { id, closed } => {
                    if let Some(mut file) = files.remove(&id) {
                        file.flush();
                    }
                    if let Some(closed) = closed {
                        let _ = closed.send(());
                    }
                }
            }
            taken += 1;
            op = if taken < MAX_GO {
                receiver.try_recv().ok()
            } else {
                None
            };
        }
        for file in files.values_mut() {
            file.flush();
        }
    }
}

/// A file the thread writes, and its lines not yet flushed. They are kept in a buffer that
/// grows to what one go writes, not in a `BufWriter`: its 8 KB buffer, taken and freed for
/// every try, made the allocator hand a page back to the system (`madvise`) on most closes.
struct OpenFile {
    path: PathBuf,
    file: File,
    unflushed: Vec<u8>,
    /// Whether a failed write was reported already (once per file).
    failed: bool,
}

impl OpenFile {
    fn open(path: PathBuf) -> io::Result<(Self, u64)> {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        // A new try's file is new: its length is known without asking.
        let (file, length) = match OpenOptions::new().create_new(true).append(true).open(&path) {
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
            file,
            unflushed: Vec::new(),
            failed: false,
        };
        Ok((open, length))
    }

    fn write(&mut self, text: &str) {
        self.unflushed.extend_from_slice(text.as_bytes());
    }

    fn flush(&mut self) {
        if !self.unflushed.is_empty() {
            let flushed = self.file.write_all(&self.unflushed);
            self.unflushed.clear();
            // A long-running task's file keeps no more than a small buffer between goes.
            if self.unflushed.capacity() > MAX_KEPT_BUFFER {
                self.unflushed = Vec::new();
            }
            self.report(flushed);
        }
    }

    fn report(&mut self, outcome: io::Result<()>) {
        if let Err(error) = outcome
            && !std::mem::replace(&mut self.failed, true)
        {
            tracing::warn!(%error, path = %self.path.display(), "Cannot write the task log");
        }
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
        first.line("one\n".into()).unwrap();
        first.close().await;
        let (again, length) = writer.open(path.clone()).await.unwrap();
        assert_eq!(length, 4);
        again.line("two\n".into()).unwrap();
        again.line("three\n".into()).unwrap();
        again.close().await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
    }
}
