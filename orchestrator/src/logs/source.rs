//! Where the bytes of a try's log are read from: its file in this process's logs folder (the
//! try ran here, or the folder is shared), else, on a shared database, the chunks the
//! worker that ran it shipped to the store. Both read the same bytes at the same offsets.

use std::{io, path::PathBuf};

use super::{
    LogSlice, TryLogKey,
    read::{LogBytes, before_of, from_of, new_lines_of, open, search_in, tail_of},
};
use crate::store::{LogKey, Store};

/// A part of a log: its last lines, the lines before an offset, or from one.
#[derive(Debug, Clone, Copy)]
pub enum LogPart {
    Tail { lines: usize },
    Before { offset: u64, lines: usize },
    From { offset: u64, lines: usize },
}

/// Where to read one try's log.
#[derive(Clone)]
pub enum LogSource {
    File(PathBuf),
    Shipped { store: Store, key: TryLogKey },
}

impl LogSource {
    /// The file at `path` when it exists (or nothing else can hold the log), else the
    /// chunks in `store`.
    pub fn locate(path: PathBuf, store: &Store, key: &TryLogKey) -> Self {
        if store.is_shared() && !path.exists() {
            Self::Shipped {
                store: store.clone(),
                key: key.clone(),
            }
        } else {
            Self::File(path)
        }
    }

    pub async fn read(&self, part: LogPart) -> io::Result<LogSlice> {
        self.with_bytes(move |log, size| match part {
            LogPart::Tail { lines } => tail_of(log, size, lines),
            LogPart::Before { offset, lines } => before_of(log, size, offset, lines),
            LogPart::From { offset, lines } => from_of(log, size, offset, lines),
        })
        .await
    }

    /// The whole lines after `offset` (at most ~4 MB); with `to_end`, a last line without
    /// its newline too.
    pub async fn read_new(&self, offset: u64, to_end: bool) -> io::Result<LogSlice> {
        self.with_bytes(move |log, size| new_lines_of(log, size, offset, to_end))
            .await
    }

    pub async fn search(&self, query: &str, limit: usize) -> io::Result<Vec<(u64, String)>> {
        let query = query.to_owned();
        self.with_bytes(move |log, size| search_in(log, size, &query, limit))
            .await
    }

    /// Runs `read` on a blocking thread over the log's bytes and size (an absent log is
    /// empty).
    async fn with_bytes<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut dyn LogBytes, u64) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let source = self.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || match source {
            LogSource::File(path) => match open(&path)? {
                Some((mut file, size)) => read(&mut file, size),
                None => read(&mut Empty, 0),
            },
            LogSource::Shipped { store, key } => {
                let mut chunks = Chunks {
                    runtime,
                    store,
                    key,
                };
                let size = chunks.size()?;
                read(&mut chunks, size)
            }
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// A log not written yet.
struct Empty;

impl LogBytes for Empty {
    fn read_at(&mut self, _start: u64, _len: usize) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }
}

/// A try's shipped chunks, read from a blocking thread.
struct Chunks {
    runtime: tokio::runtime::Handle,
    store: Store,
    key: TryLogKey,
}

impl Chunks {
    fn log_key(&self) -> LogKey<'_> {
        LogKey {
            dag_id: &self.key.dag_id,
            run_id: &self.key.run_id,
            task_id: &self.key.task_id,
            try_number: self.key.try_number,
        }
    }

    fn size(&mut self) -> io::Result<u64> {
        self.runtime
            .block_on(self.store.log_size(self.log_key()))
            .map_err(io::Error::other)
    }
}

impl LogBytes for Chunks {
    fn read_at(&mut self, start: u64, len: usize) -> io::Result<Vec<u8>> {
        self.runtime
            .block_on(self.store.log_bytes(self.log_key(), start, len))
            .map_err(io::Error::other)
    }
}
