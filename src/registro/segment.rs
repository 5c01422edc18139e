//! One month of the registro on disk, in `<store>/registro/YYYY-MM/`:
//! `records.jsonl` (one record per line, append only, readable with any text tool),
//! `receipts.bin` (the kept receipts, deflated, as frames `R`, id length, id, data
//! length, data; reached only through the index, so a frame torn by a crash is just
//! dead bytes) and the index (index.rs). Rotation drops a month directory whole.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{index, Record, RegistroError};

pub(super) const RECORDS: &str = "records.jsonl";
pub(super) const RECEIPTS: &str = "receipts.bin";
const DROPPING: &str = ".drop-";
/// Present in a month folder that holds records timed in an earlier month (the clock
/// went back; months never do), so searches bounded by time still look there.
const BACKDATED: &str = "backdated";

pub(super) fn has_backdated(root: &Path, month: &str) -> bool {
    root.join(month).join(BACKDATED).exists()
}

pub(super) fn io_error(path: &Path, e: std::io::Error) -> RegistroError {
    RegistroError::Storage(format!("{}: {e}", path.display()))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), RegistroError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

fn is_month(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
}

/// Months on disk, oldest first.
pub(super) fn months(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| is_month(n))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Whether a month folder has no record (nothing to seal).
pub(super) fn is_empty(root: &Path, month: &str) -> bool {
    std::fs::metadata(root.join(month).join(RECORDS)).map_or(true, |m| m.len() == 0)
}

/// Removes a month: renamed away first (atomic), then deleted; a crash in between
/// leaves a `.drop-` folder that the next opening removes.
pub(super) fn drop_month(root: &Path, month: &str) -> Result<(), RegistroError> {
    let from = root.join(month);
    let to = root.join(format!("{DROPPING}{month}"));
    std::fs::rename(&from, &to).map_err(|e| io_error(&from, e))?;
    sync_dir(root)?;
    std::fs::remove_dir_all(&to).map_err(|e| io_error(&to, e))
}

/// Finishes drops a crash interrupted and repairs torn tails of the newest months.
pub(super) fn recover(root: &Path) -> Result<(), RegistroError> {
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.filter_map(Result::ok) {
            if e.file_name().to_string_lossy().starts_with(DROPPING) {
                std::fs::remove_dir_all(e.path()).map_err(|err| io_error(&e.path(), err))?;
            }
        }
    }
    let months = months(root);
    for month in months.iter().rev().take(2) {
        let dir = root.join(month);
        truncate_torn_line(&dir.join(RECORDS))?;
        index::repair(&dir)?;
        reindex_tail(&dir)?;
    }
    Ok(())
}

/// Keeps `records.jsonl` up to its last newline (a crash can tear the last line;
/// that record is still pending in the store and is written again).
fn truncate_torn_line(path: &Path) -> Result<(), RegistroError> {
    let Ok(mut f) = OpenOptions::new().read(true).write(true).open(path) else {
        return Ok(());
    };
    let len = f.metadata().map_err(|e| io_error(path, e))?.len();
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.read_exact(chunk))
            .map_err(|e| io_error(path, e))?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end != len {
        f.set_len(end)
            .and_then(|_| f.sync_all())
            .map_err(|e| io_error(path, e))?;
    }
    Ok(())
}

fn read_frame_header(f: &mut File, at: u64, len: u64) -> Option<(u64, u64, u64)> {
    let mut head = [0u8; 5];
    f.seek(SeekFrom::Start(at)).ok()?;
    f.read_exact(&mut head).ok()?;
    if head[0] != b'R' {
        return None;
    }
    let id_len = u64::from(u32::from_be_bytes(head[1..5].try_into().ok()?));
    let data_at = at + 5 + id_len;
    let mut dl = [0u8; 4];
    f.seek(SeekFrom::Start(data_at)).ok()?;
    f.read_exact(&mut dl).ok()?;
    let data_len = u64::from(u32::from_be_bytes(dl));
    let end = data_at + 4 + data_len;
    (end <= len).then_some((id_len, data_len, end))
}

/// Indexes the records a crash left written but not yet indexed.
fn reindex_tail(dir: &Path) -> Result<(), RegistroError> {
    let path = dir.join(RECORDS);
    let Ok(f) = File::open(&path) else {
        return Ok(());
    };
    let covered = index::covered(dir)?;
    let len = f.metadata().map_err(|e| io_error(&path, e))?.len();
    if covered >= len {
        return Ok(());
    }
    let mut entries = Vec::new();
    for line in Lines::from(f, covered, &path)? {
        let (offset, end, record) = line?;
        if let Ok(record) = record {
            index::record_entries(&record, offset, end, &mut entries);
        }
    }
    index::append(dir, &entries)
}

/// The lines of `records.jsonl` from `start`: (offset, end, parsed record).
pub(super) struct Lines {
    reader: BufReader<File>,
    offset: u64,
    path: PathBuf,
}

type Line = (u64, u64, Result<Record, String>);

impl Lines {
    fn from(f: File, start: u64, path: &Path) -> Result<Self, RegistroError> {
        let mut reader = BufReader::with_capacity(1 << 16, f);
        reader
            .seek(SeekFrom::Start(start))
            .map_err(|e| io_error(path, e))?;
        Ok(Self {
            reader,
            offset: start,
            path: path.to_path_buf(),
        })
    }

    pub(super) fn open(root: &Path, month: &str) -> Result<Self, RegistroError> {
        let path = root.join(month).join(RECORDS);
        let f = File::open(&path).map_err(|e| io_error(&path, e))?;
        Self::from(f, 0, &path)
    }
}

impl Iterator for Lines {
    type Item = Result<Line, RegistroError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => None,
            // A line still being written (or torn by a crash, cut at next opening).
            Ok(_) if line.last() != Some(&b'\n') => None,
            Ok(n) => {
                let offset = self.offset;
                self.offset += n as u64;
                let parsed = serde_json::from_slice::<Record>(&line)
                    .map_err(|e| format!("line at byte {offset}: {e}"));
                Some(Ok((offset, self.offset, parsed)))
            }
            Err(e) => Some(Err(io_error(&self.path, e))),
        }
    }
}

/// Reads records at known offsets of one month (index hits).
pub(super) struct RecordReader {
    reader: BufReader<File>,
}

impl RecordReader {
    pub(super) fn open(root: &Path, month: &str) -> Result<Self, RegistroError> {
        let path = root.join(month).join(RECORDS);
        let f = File::open(&path).map_err(|e| io_error(&path, e))?;
        Ok(Self {
            reader: BufReader::with_capacity(8 * 1024, f),
        })
    }

    /// The record starting at `offset`; `None` if there is none (an index entry left
    /// pointing at something else, e.g. after tampering: `verify` is the judge).
    pub(super) fn at(&mut self, offset: u64) -> Option<Record> {
        self.reader.seek(SeekFrom::Start(offset)).ok()?;
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).ok()?;
        serde_json::from_slice(&line).ok()
    }
}

/// The last record of a month, if its file has one.
pub(super) fn last_record(root: &Path, month: &str) -> Result<Option<Record>, RegistroError> {
    let path = root.join(month).join(RECORDS);
    let Ok(mut f) = File::open(&path) else {
        return Ok(None);
    };
    let len = f.metadata().map_err(|e| io_error(&path, e))?.len();
    // The last line ends at `len`; find where it starts.
    let mut tail = Vec::new();
    let mut start = len;
    while start > 0 {
        let from = start.saturating_sub(64 * 1024);
        let mut chunk = vec![0u8; (start - from) as usize];
        f.seek(SeekFrom::Start(from))
            .and_then(|_| f.read_exact(&mut chunk))
            .map_err(|e| io_error(&path, e))?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = from;
        let body = &tail[..tail.len().saturating_sub(1)];
        if let Some(i) = body.iter().rposition(|b| *b == b'\n') {
            tail.drain(..=i);
            break;
        }
    }
    if tail.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&tail)
        .map(Some)
        .map_err(|e| RegistroError::Corrupt(format!("last record of {month}: {e}")))
}

/// Reads the receipt frame at `offset` if it is the one of `message_id`.
pub(super) fn receipt_at(
    root: &Path,
    month: &str,
    offset: u64,
    message_id: &str,
) -> Result<Option<Vec<u8>>, RegistroError> {
    let path = root.join(month).join(RECEIPTS);
    let mut f = File::open(&path).map_err(|e| io_error(&path, e))?;
    let len = f.metadata().map_err(|e| io_error(&path, e))?.len();
    let Some((id_len, data_len, _)) = read_frame_header(&mut f, offset, len) else {
        return Ok(None);
    };
    let mut id = vec![0u8; id_len as usize];
    let mut data = vec![0u8; data_len as usize];
    f.seek(SeekFrom::Start(offset + 5))
        .and_then(|_| f.read_exact(&mut id))
        .and_then(|_| f.seek(SeekFrom::Current(4)))
        .and_then(|_| f.read_exact(&mut data))
        .map_err(|e| io_error(&path, e))?;
    let want = index::strip_angles(message_id);
    Ok((String::from_utf8_lossy(&id).eq_ignore_ascii_case(want)).then_some(data))
}

/// A file opened for appending, and its length (where the next write lands).
fn open_append(path: &Path) -> Result<(File, u64), RegistroError> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let len = f.metadata().map_err(|e| io_error(path, e))?.len();
    Ok((f, len))
}

/// Appends to one month; nothing is durable until [`Appender::finish`].
pub(super) struct Appender {
    dir: PathBuf,
    month: String,
    backdated: bool,
    records: BufWriter<File>,
    records_len: u64,
    receipts: Option<(BufWriter<File>, u64)>,
    entries: Vec<(u64, u64)>,
}

impl Appender {
    pub(super) fn open(root: &Path, month: &str) -> Result<Self, RegistroError> {
        let dir = root.join(month);
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
            sync_dir(root)?;
        }
        let (f, records_len) = open_append(&dir.join(RECORDS))?;
        Ok(Self {
            backdated: dir.join(BACKDATED).exists(),
            dir,
            month: month.to_string(),
            records: BufWriter::with_capacity(1 << 16, f),
            records_len,
            receipts: None,
            entries: Vec::new(),
        })
    }

    /// `receipt`: (message-id, compressed bytes).
    pub(super) fn push(
        &mut self,
        record: &Record,
        receipt: Option<(&str, &[u8])>,
    ) -> Result<(), RegistroError> {
        if !self.backdated && !record.time.starts_with(&self.month) {
            let path = self.dir.join(BACKDATED);
            File::create(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_error(&path, e))?;
            sync_dir(&self.dir)?;
            self.backdated = true;
        }
        let mut line =
            serde_json::to_vec(record).map_err(|e| RegistroError::Corrupt(e.to_string()))?;
        line.push(b'\n');
        let offset = self.records_len;
        self.records
            .write_all(&line)
            .map_err(|e| io_error(&self.dir.join(RECORDS), e))?;
        self.records_len += line.len() as u64;
        if let Some((id, data)) = receipt {
            let (w, len) = self.receipts_writer()?;
            let id = index::strip_angles(id).to_ascii_lowercase();
            let mut frame = Vec::with_capacity(9 + id.len() + data.len());
            frame.push(b'R');
            frame.extend_from_slice(&(id.len() as u32).to_be_bytes());
            frame.extend_from_slice(id.as_bytes());
            frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
            frame.extend_from_slice(data);
            let at = *len;
            w.write_all(&frame)
                .map_err(|e| RegistroError::Storage(format!("{RECEIPTS}: {e}")))?;
            *len += frame.len() as u64;
            self.entries
                .push((index::key_receipt(&id), at | index::RECEIPT_FLAG));
        }
        index::record_entries(record, offset, self.records_len, &mut self.entries);
        Ok(())
    }

    fn receipts_writer(&mut self) -> Result<&mut (BufWriter<File>, u64), RegistroError> {
        if self.receipts.is_none() {
            let (f, len) = open_append(&self.dir.join(RECEIPTS))?;
            self.receipts = Some((BufWriter::new(f), len));
        }
        self.receipts
            .as_mut()
            .ok_or_else(|| RegistroError::Storage("receipts file".into()))
    }

    /// Makes the records and receipts durable, then their index entries: the index
    /// never points past what is on disk.
    pub(super) fn finish(self) -> Result<(), RegistroError> {
        let sync = |w: BufWriter<File>, name: &str| -> Result<(), RegistroError> {
            let path = self.dir.join(name);
            let f = w
                .into_inner()
                .map_err(|e| io_error(&path, e.into_error()))?;
            f.sync_data().map_err(|e| io_error(&path, e))
        };
        sync(self.records, RECORDS)?;
        if let Some((w, _)) = self.receipts {
            sync(w, RECEIPTS)?;
        }
        index::append(&self.dir, &self.entries)
    }
}
