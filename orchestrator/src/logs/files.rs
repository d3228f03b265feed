//! One thread creates and writes every try's log file. Tries run on the async runtime's
//! workers, and a folder, a file and two lines per try written from each worker at once cost
//! ~700 us of kernel time per try on ext4 (the two workers contending on the file system),
//! against ~70 us written one after the other; a worker blocked in the file system is also
//! a worker not running tasks. The thread takes whatever is waiting in one go and flushes
//! each file it wrote once per go, so lines reach the file within one go of being written.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
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

/// A file the thread writes, and whether it has lines not yet flushed.
struct OpenFile {
    path: PathBuf,
    out: BufWriter<File>,
    dirty: bool,
    /// Whether a failed write was reported already (once per file).
    failed: bool,
}

impl OpenFile {
    fn open(path: PathBuf) -> io::Result<(Self, u64)> {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let length = file.metadata()?.len();
        let open = Self {
            path,
            out: BufWriter::new(file),
            dirty: false,
            failed: false,
        };
        Ok((open, length))
    }

    fn write(&mut self, text: &str) {
        let written = self.out.write_all(text.as_bytes());
        self.dirty = true;
        self.report(written);
    }

    fn flush(&mut self) {
        if std::mem::take(&mut self.dirty) {
            let flushed = self.out.flush();
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
