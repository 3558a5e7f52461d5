//! The write-ahead log: every accepted batch is appended here, and acknowledged only once the
//! bytes are fsync'd.
//!
//! * **Records** are framed `[len: u32 LE][crc32: u32 LE][payload]`; a record's position is its
//!   LSN, the byte offset in the log since it was created. Segment files are named by the LSN of
//!   their first byte, so an LSN maps to a file and an offset without an index.
//! * **Group commit**: one writer thread takes every append waiting in its queue, writes them in
//!   one go, calls `fdatasync` once and then answers them all.
//! * **Checkpoint**: the sink reads the log with a [`WalReader`] and, after its store confirmed a
//!   write, advances the checkpoint (a small file replaced atomically). Segments wholly before the
//!   checkpoint are deleted. On start, everything after the checkpoint is replayed.
//! * **Recovery**: the newest segment is scanned on open; a torn or corrupt tail (short frame,
//!   impossible length, checksum mismatch) is truncated away. Such a tail was never acknowledged,
//!   because acknowledgement follows the fsync of the whole group.
//! * **Backlog**: when more than `max_backlog_bytes` lie between the checkpoint and the end of the
//!   log (the store is down or slow), appends are refused with a retryable error.
//! * **Attachments**: an append may carry the decoded form of its payload. The most recent ones
//!   (up to `attachment_bytes` of payload) are handed to the reader instead of reading and
//!   decoding the record again; a reader that fell behind, and every replay, read the disk.

use std::{
    any::Any,
    collections::VecDeque,
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread,
};

use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

const HEADER_BYTES: u64 = 8;
const CHECKPOINT_FILE: &str = "checkpoint";
const SEGMENT_SUFFIX: &str = ".wal";
/// Largest record accepted; a frame claiming more is corruption.
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal i/o at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "the write-ahead log backlog is full ({backlog_bytes} bytes waiting for the store, the limit is {limit_bytes}); retry later"
    )]
    BacklogFull {
        backlog_bytes: u64,
        limit_bytes: u64,
    },
    #[error("the write-ahead log is closed")]
    Closed,
    #[error(
        "wal segment {path} is corrupt at offset {offset} and is not the newest segment: {reason}"
    )]
    CorruptSegment {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("record of {0} bytes exceeds the wal record limit of {MAX_RECORD_BYTES} bytes")]
    RecordTooLarge(usize),
    #[error(
        "the store has not caught up with the write-ahead log (checkpoint {checkpoint}, waiting for {lsn}); retry later"
    )]
    CheckpointTimeout { lsn: u64, checkpoint: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Appends are refused past this much unsent data.
    pub max_backlog_bytes: u64,
    /// Turn off only for benchmarks that measure everything but the disk.
    pub fsync: bool,
    /// Payload bytes of recent appends whose attachments are kept for the reader.
    pub attachment_bytes: usize,
}

impl WalConfig {
    pub fn new(dir: impl Into<PathBuf>) -> WalConfig {
        WalConfig {
            dir: dir.into(),
            segment_bytes: 64 * 1024 * 1024,
            max_backlog_bytes: 2 * 1024 * 1024 * 1024,
            fsync: true,
            attachment_bytes: 24 * 1024 * 1024,
        }
    }
}

/// What the log holds right now, for `/metrics` and `/readyz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    pub durable_lsn: u64,
    pub checkpoint_lsn: u64,
    pub backlog_bytes: u64,
    pub segments: u64,
    pub appends: u64,
    pub fsyncs: u64,
}

/// The decoded form of a record, handed to the reader in place of the bytes.
pub type Attachment = Arc<dyn Any + Send + Sync>;

struct Append {
    payload: Vec<u8>,
    attachment: Option<Attachment>,
    done: oneshot::Sender<Result<u64, WalError>>,
    /// Not a record: a request to close the current segment after everything queued before it
    /// (see [`Wal::seal`]); answered with the end of the log.
    seal: bool,
}

/// Attachments of the newest durable records, in log order.
#[derive(Default)]
struct RecentAttachments {
    /// (start LSN, end LSN, payload bytes, attachment)
    entries: VecDeque<(u64, u64, usize, Attachment)>,
    bytes: usize,
}

struct Shared {
    dir: PathBuf,
    checkpoint: AtomicU64,
    durable: watch::Sender<u64>,
    appends: AtomicU64,
    fsyncs: AtomicU64,
    /// Start LSNs of the segments on disk, ascending.
    segments: Mutex<Vec<u64>>,
    max_backlog_bytes: u64,
    recent: Mutex<RecentAttachments>,
    attachment_bytes: usize,
}

/// The log. Cheap to share behind an `Arc`; appends from any task.
pub struct Wal {
    shared: Arc<Shared>,
    queue: Mutex<Option<mpsc::Sender<Append>>>,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Wal {
    /// Opens the log in `config.dir`, truncating a torn tail, and starts the writer thread.
    pub fn open(config: WalConfig) -> Result<Wal, WalError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut segments = list_segments(&dir)?;
        let checkpoint = read_checkpoint(&dir)?;
        if segments.is_empty() {
            segments.push(checkpoint);
            create_segment(&dir, checkpoint)?;
        }
        // Validate every segment after the checkpoint; only the newest may have a torn tail.
        let mut end = 0;
        for (i, &start) in segments.iter().enumerate() {
            let newest = i + 1 == segments.len();
            let next_start = segments.get(i + 1).copied();
            if next_start.is_some_and(|n| n <= checkpoint) {
                continue;
            }
            let path = segment_path(&dir, start);
            let valid = scan_segment(&path)?;
            match (valid.corruption, newest) {
                (Some(reason), false) => {
                    return Err(WalError::CorruptSegment {
                        path,
                        offset: valid.valid_bytes,
                        reason,
                    });
                }
                (Some(reason), true) => {
                    tracing::warn!(path = %path.display(), offset = valid.valid_bytes, %reason, "truncating torn wal tail");
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_err(&path))?;
                    f.set_len(valid.valid_bytes).map_err(io_err(&path))?;
                    f.sync_all().map_err(io_err(&path))?;
                }
                (None, _) => {}
            }
            end = start + valid.valid_bytes;
        }
        let checkpoint = checkpoint.min(end);
        let (durable, _) = watch::channel(end);
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            checkpoint: AtomicU64::new(checkpoint),
            durable,
            appends: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            segments: Mutex::new(segments),
            max_backlog_bytes: config.max_backlog_bytes,
            recent: Mutex::new(RecentAttachments::default()),
            attachment_bytes: config.attachment_bytes,
        });
        let (tx, rx) = mpsc::channel();
        let writer = SegmentWriter::open(shared.clone(), end, &config)?;
        let handle = thread::Builder::new()
            .name("vigil-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err(&dir))?;
        Ok(Wal {
            shared,
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Appends one record and waits until it is on disk; returns the LSN just past it.
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64, WalError> {
        self.append_with(payload, None).await
    }

    /// [`Self::append`], with the decoded form of the payload for the reader to take instead.
    pub async fn append_with(
        &self,
        payload: Vec<u8>,
        attachment: Option<Attachment>,
    ) -> Result<u64, WalError> {
        if payload.len() > MAX_RECORD_BYTES {
            return Err(WalError::RecordTooLarge(payload.len()));
        }
        let backlog = self.backlog_bytes();
        if backlog > self.shared.max_backlog_bytes {
            return Err(WalError::BacklogFull {
                backlog_bytes: backlog,
                limit_bytes: self.shared.max_backlog_bytes,
            });
        }
        let (done, wait) = oneshot::channel();
        {
            let queue = self.queue.lock();
            let sender = queue.as_ref().ok_or(WalError::Closed)?;
            sender
                .send(Append {
                    payload,
                    attachment,
                    done,
                    seal: false,
                })
                .map_err(|_| WalError::Closed)?;
        }
        wait.await.map_err(|_| WalError::Closed)?
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The LSN up to which everything is durable.
    pub fn durable_lsn(&self) -> u64 {
        *self.shared.durable.borrow()
    }

    pub fn checkpoint_lsn(&self) -> u64 {
        self.shared.checkpoint.load(Ordering::Acquire)
    }

    pub fn backlog_bytes(&self) -> u64 {
        self.durable_lsn().saturating_sub(self.checkpoint_lsn())
    }

    /// Whether the backlog is past its limit (appends are being refused).
    pub fn is_full(&self) -> bool {
        self.backlog_bytes() > self.shared.max_backlog_bytes
    }

    pub fn stats(&self) -> WalStats {
        WalStats {
            durable_lsn: self.durable_lsn(),
            checkpoint_lsn: self.checkpoint_lsn(),
            backlog_bytes: self.backlog_bytes(),
            segments: self.shared.segments.lock().len() as u64,
            appends: self.shared.appends.load(Ordering::Relaxed),
            fsyncs: self.shared.fsyncs.load(Ordering::Relaxed),
        }
    }

    /// A reader from the checkpoint: what the sink has not yet confirmed.
    pub fn reader(&self) -> WalReader {
        WalReader {
            shared: self.shared.clone(),
            durable: self.shared.durable.subscribe(),
            position: self.checkpoint_lsn(),
            file: None,
        }
    }

    /// Records that everything before `lsn` is safely in the store; deletes segments wholly
    /// before it. Never moves backwards.
    pub fn advance_checkpoint(&self, lsn: u64) -> Result<(), WalError> {
        let lsn = lsn.min(self.durable_lsn());
        if lsn <= self.checkpoint_lsn() {
            return Ok(());
        }
        write_checkpoint(&self.shared.dir, lsn)?;
        self.shared.checkpoint.store(lsn, Ordering::Release);
        self.delete_checkpointed_segments();
        Ok(())
    }

    /// Deletes the segments wholly before the checkpoint; returns how many.
    fn delete_checkpointed_segments(&self) -> usize {
        let lsn = self.checkpoint_lsn();
        let mut segments = self.shared.segments.lock();
        let mut deleted = 0;
        while segments.len() > 1 && segments[1] <= lsn {
            let start = segments.remove(0);
            let path = segment_path(&self.shared.dir, start);
            match fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not delete wal segment")
                }
            }
        }
        deleted
    }

    /// Closes the current segment once everything appended before this call is durable, and
    /// returns the end of the log at that point: every record acknowledged before the call lies
    /// in segments wholly before it.
    pub async fn seal(&self) -> Result<u64, WalError> {
        let (done, wait) = oneshot::channel();
        {
            let queue = self.queue.lock();
            let sender = queue.as_ref().ok_or(WalError::Closed)?;
            sender
                .send(Append {
                    payload: Vec::new(),
                    attachment: None,
                    done,
                    seal: true,
                })
                .map_err(|_| WalError::Closed)?;
        }
        wait.await.map_err(|_| WalError::Closed)?
    }

    /// Waits until the checkpoint reaches `lsn` (the store holds everything before it), then
    /// deletes the segments wholly before the checkpoint, so that nothing before `lsn` remains
    /// on disk; returns how many segments were deleted. Gives up with
    /// [`WalError::CheckpointTimeout`] after `timeout` (the store is down or far behind).
    pub async fn purge_through(
        &self,
        lsn: u64,
        timeout: std::time::Duration,
    ) -> Result<usize, WalError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.checkpoint_lsn() < lsn {
            if tokio::time::Instant::now() >= deadline {
                return Err(WalError::CheckpointTimeout {
                    lsn,
                    checkpoint: self.checkpoint_lsn(),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(self.delete_checkpointed_segments())
    }

    /// Stops the writer after it has written and fsync'd everything queued.
    pub fn close(&self) {
        self.queue.lock().take();
        if let Some(handle) = self.writer.lock().take()
            && handle.join().is_err()
        {
            tracing::error!("wal writer thread panicked");
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread's state: the open newest segment.
struct SegmentWriter {
    shared: Arc<Shared>,
    file: File,
    segment_start: u64,
    end: u64,
    segment_bytes: u64,
    fsync: bool,
}

impl SegmentWriter {
    fn open(shared: Arc<Shared>, end: u64, config: &WalConfig) -> Result<SegmentWriter, WalError> {
        let segment_start = shared.segments.lock().last().copied().unwrap_or(0);
        let path = segment_path(&shared.dir, segment_start);
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
        Ok(SegmentWriter {
            shared,
            file,
            segment_start,
            end,
            segment_bytes: config.segment_bytes,
            fsync: config.fsync,
        })
    }

    fn run(mut self, queue: mpsc::Receiver<Append>) {
        let mut buffer = Vec::with_capacity(1 << 20);
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            while let Ok(more) = queue.try_recv() {
                group.push(more);
                if group.len() >= 4096 {
                    break;
                }
            }
            let (seals, mut group): (Vec<Append>, Vec<Append>) =
                group.into_iter().partition(|append| append.seal);
            buffer.clear();
            let mut ends = Vec::with_capacity(group.len());
            let mut lsn = self.end;
            for append in &group {
                buffer.extend_from_slice(&(append.payload.len() as u32).to_le_bytes());
                buffer.extend_from_slice(&crc32fast::hash(&append.payload).to_le_bytes());
                buffer.extend_from_slice(&append.payload);
                lsn += HEADER_BYTES + append.payload.len() as u64;
                ends.push(lsn);
            }
            let result = self.write_group(&buffer);
            match result {
                Ok(()) => {
                    let start = self.end;
                    self.end = lsn;
                    self.shared
                        .appends
                        .fetch_add(group.len() as u64, Ordering::Relaxed);
                    // Attachments before durability is published, so a reader finds them.
                    self.keep_attachments(start, &mut group, &ends);
                    self.shared.durable.send_replace(lsn);
                    for (append, end) in group.into_iter().zip(ends) {
                        let _ = append.done.send(Ok(end));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "wal write failed; refusing this group");
                    // Cut back whatever part of the group reached the file, so the log stays a
                    // sequence of whole records that were all acknowledged.
                    let _ = self.file.set_len(self.end - self.segment_start);
                    let message = e.to_string();
                    for append in group {
                        let _ = append.done.send(Err(WalError::Io {
                            path: self.shared.dir.clone(),
                            source: io::Error::other(message.clone()),
                        }));
                    }
                }
            }
            let full = self.end - self.segment_start >= self.segment_bytes;
            let sealing = !seals.is_empty() && self.end > self.segment_start;
            let rotated = if full || sealing {
                self.rotate().inspect_err(|e| {
                    tracing::error!(error = %e, "wal segment rotation failed");
                })
            } else {
                Ok(())
            };
            for seal in seals {
                let answer = match &rotated {
                    Ok(()) => Ok(self.end),
                    Err(e) => Err(WalError::Io {
                        path: self.shared.dir.clone(),
                        source: io::Error::other(e.to_string()),
                    }),
                };
                let _ = seal.done.send(answer);
            }
        }
        if self.fsync {
            let _ = self.file.sync_data();
        }
    }

    fn keep_attachments(&self, mut start: u64, group: &mut [Append], ends: &[u64]) {
        let mut recent = self.shared.recent.lock();
        for (append, &end) in group.iter_mut().zip(ends) {
            if let Some(attachment) = append.attachment.take() {
                let bytes = append.payload.len();
                recent.entries.push_back((start, end, bytes, attachment));
                recent.bytes += bytes;
            }
            start = end;
        }
        while recent.bytes > self.shared.attachment_bytes {
            match recent.entries.pop_front() {
                Some((_, _, bytes, _)) => recent.bytes -= bytes,
                None => break,
            }
        }
    }

    fn write_group(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        if self.fsync {
            self.file.sync_data()?;
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), WalError> {
        create_segment(&self.shared.dir, self.end)?;
        let path = segment_path(&self.shared.dir, self.end);
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        self.segment_start = self.end;
        self.shared.segments.lock().push(self.end);
        Ok(())
    }
}

/// One record read back: where it starts, the LSN just past it (what to checkpoint), and either
/// its attachment (taken from memory; `payload` is then empty) or its payload read from disk.
#[derive(Clone)]
pub struct WalRecord {
    pub start_lsn: u64,
    pub end_lsn: u64,
    pub payload: Vec<u8>,
    pub attachment: Option<Attachment>,
}

impl std::fmt::Debug for WalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalRecord")
            .field("start_lsn", &self.start_lsn)
            .field("end_lsn", &self.end_lsn)
            .field("payload_bytes", &self.payload.len())
            .field("attached", &self.attachment.is_some())
            .finish()
    }
}

/// Follows the log from a position, seeing only what is durable.
pub struct WalReader {
    shared: Arc<Shared>,
    durable: watch::Receiver<u64>,
    position: u64,
    file: Option<(u64, File)>,
}

impl WalReader {
    /// The LSN of the next record to read.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Goes back to the record starting at `lsn` (one already read), to read it again.
    pub fn rewind_to(&mut self, lsn: u64) {
        debug_assert!(lsn <= self.position);
        self.position = lsn;
    }

    /// Waits until something is readable, or `timeout` passed; false on timeout.
    pub async fn wait_readable(&mut self, timeout: std::time::Duration) -> bool {
        if *self.durable.borrow_and_update() > self.position {
            return true;
        }
        matches!(
            tokio::time::timeout(timeout, self.durable.wait_for(|d| *d > self.position)).await,
            Ok(Ok(_))
        )
    }

    /// Reads durable records, at most about `max_bytes` of payload; empty when caught up. A
    /// record that cannot be read ends the read: the records before it are returned, the
    /// position stays at it, and the next read meets the failure (an error only when it is the
    /// first record).
    pub fn read(&mut self, max_bytes: usize) -> Result<Vec<WalRecord>, WalError> {
        let durable = *self.durable.borrow();
        let mut records = Vec::new();
        let mut taken = 0usize;
        while self.position < durable && taken < max_bytes {
            if let Some((end, bytes, attachment)) = self.take_attachment() {
                let start = self.position;
                self.position = end;
                taken += bytes;
                records.push(WalRecord {
                    start_lsn: start,
                    end_lsn: end,
                    payload: Vec::new(),
                    attachment: Some(attachment),
                });
                continue;
            }
            let record = match self.read_one() {
                Ok(record) => record,
                // Dropping what was read would skip it: the position is already past it.
                Err(_) if !records.is_empty() => break,
                Err(e) => return Err(e),
            };
            taken += record.payload.len();
            records.push(record);
        }
        Ok(records)
    }

    /// The attachment of the record at the reader's position, if it is still kept.
    fn take_attachment(&mut self) -> Option<(u64, usize, Attachment)> {
        let mut recent = self.shared.recent.lock();
        while let Some(&(start, ..)) = recent.entries.front() {
            if start > self.position {
                return None;
            }
            let (start, end, bytes, attachment) = recent.entries.pop_front()?;
            recent.bytes -= bytes;
            if start == self.position {
                return Some((end, bytes, attachment));
            }
            // Older than the position: already read from disk.
        }
        None
    }

    fn read_one(&mut self) -> Result<WalRecord, WalError> {
        let segment = {
            let segments = self.shared.segments.lock();
            segments
                .iter()
                .rev()
                .find(|&&s| s <= self.position)
                .copied()
                .unwrap_or(0)
        };
        let path = segment_path(&self.shared.dir, segment);
        if self.file.as_ref().is_none_or(|(s, _)| *s != segment) {
            let file = File::open(&path).map_err(io_err(&path))?;
            self.file = Some((segment, file));
        }
        let Some((_, file)) = self.file.as_mut() else {
            return Err(WalError::Closed);
        };
        let offset = self.position - segment;
        file.seek(SeekFrom::Start(offset)).map_err(io_err(&path))?;
        let mut header = [0u8; HEADER_BYTES as usize];
        match file.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                // The durable end lies beyond this segment: the record is in the next one.
                let next = self
                    .shared
                    .segments
                    .lock()
                    .iter()
                    .find(|&&s| s > segment)
                    .copied();
                return match next {
                    Some(next) if next > self.position => {
                        self.position = next;
                        self.read_one()
                    }
                    _ => Err(io_err(&path)(e)),
                };
            }
            Err(e) => return Err(io_err(&path)(e)),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD_BYTES {
            return Err(WalError::CorruptSegment {
                path,
                offset,
                reason: format!("frame length {len}"),
            });
        }
        let mut payload = vec![0u8; len];
        file.read_exact(&mut payload).map_err(io_err(&path))?;
        if crc32fast::hash(&payload) != crc {
            return Err(WalError::CorruptSegment {
                path,
                offset,
                reason: "checksum mismatch".into(),
            });
        }
        let start = self.position;
        self.position += HEADER_BYTES + len as u64;
        Ok(WalRecord {
            start_lsn: start,
            end_lsn: self.position,
            payload,
            attachment: None,
        })
    }
}

struct ScanResult {
    valid_bytes: u64,
    corruption: Option<String>,
}

/// Walks a segment's frames; stops at the first one that is short, too long or mis-checksummed.
fn scan_segment(path: &Path) -> Result<ScanResult, WalError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    Ok(walk_frames(&bytes, |_, _| {}))
}

/// Calls `visit(offset, payload)` for each whole, checksummed frame of a segment's bytes, in
/// order; says how far the valid frames reach and why the walk stopped short, if it did.
fn walk_frames(bytes: &[u8], mut visit: impl FnMut(usize, &[u8])) -> ScanResult {
    let mut offset = 0usize;
    let corruption = loop {
        if offset == bytes.len() {
            break None;
        }
        if bytes.len() - offset < HEADER_BYTES as usize {
            break Some(format!(
                "{} trailing bytes, shorter than a frame header",
                bytes.len() - offset
            ));
        }
        let h = &bytes[offset..offset + HEADER_BYTES as usize];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let body = offset + HEADER_BYTES as usize;
        if len > MAX_RECORD_BYTES || body + len > bytes.len() {
            break Some(format!(
                "frame of {len} bytes runs past the end of the file"
            ));
        }
        let payload = &bytes[body..body + len];
        if crc32fast::hash(payload) != crc {
            break Some("checksum mismatch".to_string());
        }
        visit(offset, payload);
        offset = body + len;
    };
    ScanResult {
        valid_bytes: offset as u64,
        corruption,
    }
}

/// Walks a segment's bytes as the server does when it opens the log: `visit(offset, payload)`
/// for every whole, checksummed record in order; returns why the walk stopped short of the end,
/// if it did (a torn or corrupt tail). For tools and the fuzzer, which read bytes, not files.
pub fn walk_segment(bytes: &[u8], visit: impl FnMut(usize, &[u8])) -> Option<String> {
    walk_frames(bytes, visit).corruption
}

/// What [`read_stored`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLog {
    pub checkpoint_lsn: u64,
    /// Start LSNs of the segment files.
    pub segments: Vec<u64>,
    /// Where the whole records end.
    pub end_lsn: u64,
    /// Where and why the walk stopped before the end of the files (a torn tail, which the next
    /// start of the server cuts away, or corruption).
    pub corruption: Option<(u64, String)>,
}

/// Reads the log in `dir` without opening it for writing (a running server may be appending):
/// calls `visit(start_lsn, end_lsn, payload)` for every whole record after the checkpoint, in
/// log order, one segment in memory at a time. For inspection; the server reads through
/// [`WalReader`].
pub fn read_stored(
    dir: &Path,
    mut visit: impl FnMut(u64, u64, &[u8]),
) -> Result<StoredLog, WalError> {
    let checkpoint_lsn = read_checkpoint(dir)?;
    let segments = list_segments(dir)?;
    let mut end_lsn = checkpoint_lsn;
    let mut corruption = None;
    for (i, &start) in segments.iter().enumerate() {
        if segments
            .get(i + 1)
            .is_some_and(|&next| next <= checkpoint_lsn)
        {
            continue;
        }
        let path = segment_path(dir, start);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let scan = walk_frames(&bytes, |offset, payload| {
            let record_start = start + offset as u64;
            let record_end = record_start + HEADER_BYTES + payload.len() as u64;
            if record_start >= checkpoint_lsn {
                visit(record_start, record_end, payload);
            }
        });
        end_lsn = end_lsn.max(start + scan.valid_bytes);
        if let Some(reason) = scan.corruption {
            corruption = Some((start + scan.valid_bytes, reason));
            break;
        }
    }
    Ok(StoredLog {
        checkpoint_lsn,
        segments,
        end_lsn,
        corruption,
    })
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}{SEGMENT_SUFFIX}"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut starts = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if let Some(start) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        {
            starts.push(start);
        }
    }
    starts.sort_unstable();
    Ok(starts)
}

fn create_segment(dir: &Path, start: u64) -> Result<(), WalError> {
    let path = segment_path(dir, start);
    File::create(&path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn read_checkpoint(dir: &Path) -> Result<u64, WalError> {
    let path = dir.join(CHECKPOINT_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| WalError::CorruptSegment {
            path,
            offset: 0,
            reason: format!("checkpoint {:?} is not a number", text.trim()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_err(&path)(e)),
    }
}

fn write_checkpoint(dir: &Path, lsn: u64) -> Result<(), WalError> {
    let path = dir.join(CHECKPOINT_FILE);
    let tmp = dir.join("checkpoint.tmp");
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(lsn.to_string().as_bytes())
            .map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn config(dir: &Path) -> WalConfig {
        WalConfig {
            segment_bytes: 256,
            ..WalConfig::new(dir)
        }
    }

    fn payload(i: usize) -> Vec<u8> {
        format!("record-{i}-{}", "x".repeat(i % 50)).into_bytes()
    }

    fn read_all(wal: &Wal) -> Vec<Vec<u8>> {
        let mut reader = wal.reader();
        reader
            .read(usize::MAX)
            .unwrap()
            .into_iter()
            .map(|r| r.payload)
            .collect()
    }

    #[tokio::test]
    async fn appends_survive_reopen_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(config(dir.path())).unwrap();
        for i in 0..40 {
            wal.append(payload(i)).await.unwrap();
        }
        assert!(wal.stats().segments > 1, "small segments must rotate");
        drop(wal);
        let wal = Wal::open(config(dir.path())).unwrap();
        assert_eq!(read_all(&wal), (0..40).map(payload).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn checkpoint_skips_confirmed_records_and_deletes_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(config(dir.path())).unwrap();
        let mut ends = Vec::new();
        for i in 0..30 {
            ends.push(wal.append(payload(i)).await.unwrap());
        }
        let before = wal.stats().segments;
        wal.advance_checkpoint(ends[19]).unwrap();
        assert!(wal.stats().segments < before);
        drop(wal);
        let wal = Wal::open(config(dir.path())).unwrap();
        assert_eq!(read_all(&wal), (20..30).map(payload).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn sealing_then_purging_leaves_no_earlier_record_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig::new(dir.path())).unwrap();
        let marker = b"erase-me-0123456789".to_vec();
        for _ in 0..3 {
            wal.append(marker.clone()).await.unwrap();
        }
        let sealed = wal.seal().await.unwrap();
        assert_eq!(sealed, wal.durable_lsn());
        // A seal of an empty segment does not start another one.
        assert_eq!(wal.seal().await.unwrap(), sealed);
        assert_eq!(wal.stats().segments, 2);
        wal.append(payload(1)).await.unwrap();

        let short = std::time::Duration::from_millis(50);
        assert!(matches!(
            wal.purge_through(sealed, short).await,
            Err(WalError::CheckpointTimeout { .. })
        ));
        wal.advance_checkpoint(sealed).unwrap();
        assert_eq!(wal.purge_through(sealed, short).await.unwrap(), 0);
        for entry in fs::read_dir(dir.path()).unwrap() {
            let bytes = fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_slice()));
        }
        assert_eq!(read_all(&wal), vec![payload(1)]);
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_and_new_appends_follow() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig::new(dir.path())).unwrap();
        for i in 0..5 {
            wal.append(payload(i)).await.unwrap();
        }
        drop(wal);
        let segment = segment_path(dir.path(), 0);
        let full = fs::read(&segment).unwrap();
        // A torn write: half of a sixth frame.
        let mut torn = full.clone();
        torn.extend_from_slice(&[20, 0, 0, 0, 1, 2, 3, 4, b'a', b'b']);
        fs::write(&segment, &torn).unwrap();
        let wal = Wal::open(WalConfig::new(dir.path())).unwrap();
        assert_eq!(fs::metadata(&segment).unwrap().len(), full.len() as u64);
        wal.append(payload(5)).await.unwrap();
        assert_eq!(read_all(&wal), (0..6).map(payload).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn corrupt_tail_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig::new(dir.path())).unwrap();
        for i in 0..3 {
            wal.append(payload(i)).await.unwrap();
        }
        drop(wal);
        let segment = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&segment).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&segment, &bytes).unwrap();
        let wal = Wal::open(WalConfig::new(dir.path())).unwrap();
        assert_eq!(read_all(&wal), (0..2).map(payload).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn corruption_in_an_older_segment_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(config(dir.path())).unwrap();
        for i in 0..20 {
            wal.append(payload(i)).await.unwrap();
        }
        drop(wal);
        let first = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&first).unwrap();
        bytes[10] ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        assert!(matches!(
            Wal::open(config(dir.path())),
            Err(WalError::CorruptSegment { .. })
        ));
    }

    #[tokio::test]
    async fn backlog_limit_refuses_until_checkpoint_advances() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig {
            max_backlog_bytes: 100,
            ..WalConfig::new(dir.path())
        })
        .unwrap();
        let mut last = 0;
        while !wal.is_full() {
            last = wal.append(vec![7; 30]).await.unwrap();
        }
        assert!(matches!(
            wal.append(vec![7; 30]).await,
            Err(WalError::BacklogFull { .. })
        ));
        wal.advance_checkpoint(last).unwrap();
        wal.append(vec![7; 30]).await.unwrap();
    }

    #[tokio::test]
    async fn concurrent_appends_are_group_committed() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(WalConfig::new(dir.path())).unwrap());
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let wal = wal.clone();
                tokio::spawn(async move { wal.append(payload(i)).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let stats = wal.stats();
        assert_eq!(stats.appends, 200);
        assert!(stats.fsyncs <= 200);
        let mut got = read_all(&wal);
        got.sort();
        let mut want: Vec<_> = (0..200).map(payload).collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn reader_follows_new_appends() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(config(dir.path())).unwrap());
        let mut reader = wal.reader();
        assert!(!reader.wait_readable(Duration::from_millis(10)).await);
        let writer = wal.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                writer.append(payload(i)).await.unwrap();
            }
        });
        let mut got = Vec::new();
        while got.len() < 20 {
            assert!(reader.wait_readable(Duration::from_secs(5)).await);
            got.extend(
                reader
                    .read(usize::MAX)
                    .unwrap()
                    .into_iter()
                    .map(|r| r.payload),
            );
        }
        assert_eq!(got, (0..20).map(payload).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn recent_attachments_replace_reads_and_old_ones_come_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig {
            attachment_bytes: 100,
            ..WalConfig::new(dir.path())
        })
        .unwrap();
        for i in 0..10usize {
            let attachment: Attachment = Arc::new(i);
            wal.append_with(vec![i as u8; 30], Some(attachment))
                .await
                .unwrap();
        }
        let mut reader = wal.reader();
        let records = reader.read(usize::MAX).unwrap();
        assert_eq!(records.len(), 10);
        // 100 bytes of attachments hold the last three 30-byte records; the rest came from disk.
        for (i, record) in records.iter().enumerate() {
            match &record.attachment {
                Some(a) => {
                    assert!(i >= 7, "record {i} should have been read from disk");
                    assert_eq!(a.downcast_ref::<usize>(), Some(&i));
                    assert!(record.payload.is_empty());
                }
                None => {
                    assert!(i < 7, "record {i} should have come from memory");
                    assert_eq!(record.payload, vec![i as u8; 30]);
                }
            }
        }
        // A replay reads everything from disk.
        drop(reader);
        drop(wal);
        let wal = Wal::open(WalConfig::new(dir.path())).unwrap();
        let replayed = wal.reader().read(usize::MAX).unwrap();
        assert!(replayed.iter().all(|r| r.attachment.is_none()));
        assert_eq!(replayed.len(), 10);
    }

    #[tokio::test]
    async fn a_record_that_cannot_be_read_keeps_the_records_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig::new(dir.path())).unwrap();
        let mut ends = Vec::new();
        for i in 0..5u8 {
            ends.push(wal.append(vec![i; 20]).await.unwrap());
        }
        // Flip a payload byte of the fourth record on disk: its checksum no longer matches.
        let segment = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&segment).unwrap();
        bytes[(ends[2] + HEADER_BYTES) as usize] ^= 0xff;
        fs::write(&segment, bytes).unwrap();

        let mut reader = wal.reader();
        let records = reader.read(usize::MAX).unwrap();
        let payloads: Vec<Vec<u8>> = records.into_iter().map(|r| r.payload).collect();
        assert_eq!(payloads, (0..3u8).map(|i| vec![i; 20]).collect::<Vec<_>>());
        assert_eq!(reader.position(), ends[2]);
        // The next read meets the bad record and stays where it is.
        assert!(matches!(
            reader.read(usize::MAX),
            Err(WalError::CorruptSegment { .. })
        ));
        assert_eq!(reader.position(), ends[2]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever garbage follows the last whole record, reopening keeps exactly the whole records.
        #[test]
        fn any_garbage_tail_is_cut_back_to_whole_records(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..20),
            garbage in proptest::collection::vec(any::<u8>(), 1..40),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let wal = Wal::open(WalConfig::new(dir.path())).unwrap();
                for r in &records {
                    wal.append(r.clone()).await.unwrap();
                }
                drop(wal);
                let segment = segment_path(dir.path(), 0);
                let mut bytes = fs::read(&segment).unwrap();
                bytes.extend_from_slice(&garbage);
                fs::write(&segment, &bytes).unwrap();
                let wal = Wal::open(WalConfig::new(dir.path())).unwrap();
                let got = read_all(&wal);
                // Garbage may by chance form a valid frame only if its checksum matches: then it
                // is a whole record; the records written must always come first and intact.
                prop_assert!(got.len() >= records.len());
                prop_assert_eq!(&got[..records.len()], &records[..]);
                Ok(())
            })?;
        }
    }
}
