//! Registro dei log (pec-rules §1.3; DPR 68/2005: 30 months): every event of the
//! provider, hash-chained, one folder of append-only files per month, each closed month
//! sealed by a checkpoint signed with the provider's key. Receipts and notices the
//! provider emitted are kept compressed beside the events, so a lost receipt can be
//! reproduced.
//!
//! A record is born inside the store transaction of the step it describes (its
//! sequence number and chain link come from the head kept in the store's `registro`
//! tree), waits there, and is moved to `<store>/registro/YYYY-MM/` by
//! [`Registro::settle`]. The `registro` tree also keeps the checkpoints, which outlive
//! rotation. Here: opening, appending, settling, rotation. Beside it:
//!
//! - event.rs: what is recorded; chain.rs: records and their hash chain;
//! - segment.rs: a month's files; index.rs: how they are searched; search.rs: queries;
//! - checkpoint.rs: sealing a month; verify.rs: the chain check; export.rs: a month
//!   as a file; months.rs: Italian months; migrate.rs: stores from before the files.

mod chain;
mod checkpoint;
mod event;
mod export;
mod index;
mod migrate;
mod months;
mod search;
mod segment;
mod verify;

pub use chain::Record;
use chain::{head_of, new_record, Head};
use checkpoint::check_checkpoint;
pub use checkpoint::Checkpoint;
pub use event::{Event, EventKind, ALL as ALL_KINDS};
pub use export::{verify_export, Export};
pub use months::{month_after, month_minus, month_of, month_start, month_start_italian};
pub use search::Query;
pub use verify::VerifyReport;

use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

const META_TREE: &str = "registro";
/// The months' folder, inside the store's.
const ROOT: &str = "registro";
/// Where months lived in the store before they had files (migrated at opening).
const OLD_MONTH_TREE: &str = "registro-";
const HEAD: &[u8] = b"head";

#[derive(Debug, thiserror::Error)]
pub enum RegistroError {
    #[error("registro storage: {0}")]
    Storage(String),
    #[error("corrupt registro data: {0}")]
    Corrupt(String),
    #[error("signing a checkpoint: {0}")]
    Signing(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<sled::Error> for RegistroError {
    fn from(e: sled::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

/// See [`Registro::summary`].
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub months: Vec<String>,
    /// Bytes of the month files (records, receipts, index).
    pub bytes: u64,
    pub last_sealed: Option<String>,
    /// Records ever written (the last sequence number).
    pub records: u64,
}

/// The registro: its chain head, checkpoints and records not yet settled live in the
/// store's `registro` tree; the months' records in files beside the store.
#[derive(Clone)]
pub struct Registro {
    meta: sled::Tree,
    root: std::path::PathBuf,
    /// Large receipts waiting for [`Registro::settle`], one compressed file each.
    pending: std::path::PathBuf,
}

/// Receipts larger than this (a completa carrying a 30 MB original) wait for settle in
/// a file of their own rather than as a sled value: compressed straight to disk, never
/// held twice in memory.
const RECEIPT_INLINE_MAX: usize = 128 * 1024;
/// What a pending receipt value that names such a file starts with.
const RECEIPT_FILE: &[u8] = b"\0pecbox-receipt-file\0";
const PENDING_DIR: &str = "registro-pending";

/// The file a pending receipt value names, if it names one.
fn receipt_file(value: &[u8]) -> Option<&str> {
    let name = std::str::from_utf8(value.strip_prefix(RECEIPT_FILE)?).ok()?;
    let ok = name.len() == 66
        && name.ends_with(".z")
        && name[..64].bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(name)
}

pub fn compress(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

pub fn decompress(bytes: &[u8]) -> Result<Vec<u8>, RegistroError> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| RegistroError::Corrupt(format!("stored receipt: {e}")))?;
    Ok(out)
}

type TxResult<T> = Result<T, UnabortableTransactionError>;

fn pending_key(prefix: u8, seq: u64) -> [u8; 9] {
    let mut k = [prefix; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Appends inside a transaction over the registro's tree (see [`Registro::tree`]):
/// the record gets its sequence number and chain link now, atomically with the step's
/// other writes, and waits in the store until [`Registro::settle`] moves it to its
/// month's files. `receipt` is the already compressed copy to keep.
pub fn append_in(
    meta: &TransactionalTree,
    event: &Event,
    time: DateTime<Utc>,
    receipt: Option<&[u8]>,
) -> TxResult<u64> {
    let head = meta
        .get(HEAD)?
        .and_then(|v| serde_json::from_slice::<Head>(&v).ok());
    let keep = receipt.is_some() && event.message_id.is_some();
    let time = event.at.unwrap_or(time);
    let (record, head) = new_record(head, event.clone(), time, keep);
    meta.insert(
        &pending_key(b'p', head.seq),
        serde_json::to_vec(&record).unwrap_or_default(),
    )?;
    if let (true, Some(bytes)) = (keep, receipt) {
        meta.insert(&pending_key(b'q', head.seq), bytes)?;
    }
    meta.insert(HEAD, serde_json::to_vec(&head).unwrap_or_default())?;
    Ok(head.seq)
}

/// One writer per process moves records to the files (a second would duplicate
/// lines), compacts indexes and drops months; index lookups read under the shared
/// side so compaction never hides entries from them. sled's lock already keeps other
/// processes out of the store.
static FILES: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn writer() -> std::sync::RwLockWriteGuard<'static, ()> {
    FILES
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn reader() -> std::sync::RwLockReadGuard<'static, ()> {
    FILES
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registro {
    pub fn open(store: &crate::store::Store) -> Result<Self, RegistroError> {
        let root = store.dir().join(ROOT);
        std::fs::create_dir_all(&root).map_err(|e| segment::io_error(&root, e))?;
        let pending = store.dir().join(PENDING_DIR);
        std::fs::create_dir_all(&pending).map_err(|e| segment::io_error(&pending, e))?;
        let registro = Self {
            meta: store.raw_db().open_tree(META_TREE)?,
            root,
            pending,
        };
        {
            let _w = writer();
            registro.drop_unreferenced_receipt_files()?;
            segment::recover(&registro.root)?;
            registro.migrate_sled_months(store.raw_db())?;
            registro.reconcile_head()?;
        }
        Ok(registro)
    }

    /// The copy of a receipt a step keeps, as the value its pending record gets:
    /// compressed in memory when small; when large, compressed straight into a file
    /// (written durably before the step's transaction commits) that the value names.
    /// Staging the same receipt twice (a retried transaction) names the same file.
    pub fn stage_receipt(&self, bytes: &[u8]) -> Result<Vec<u8>, RegistroError> {
        if bytes.len() <= RECEIPT_INLINE_MAX {
            return Ok(compress(bytes));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let name: String = digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .chain(std::iter::once(".z".to_string()))
            .collect();
        let path = self.pending.join(&name);
        if !path.exists() {
            let tmp = self
                .pending
                .join(format!(".tmp-{name}-{}", std::process::id()));
            let written = (|| {
                let file = std::fs::File::create(&tmp)?;
                let mut enc = flate2::write::DeflateEncoder::new(
                    std::io::BufWriter::new(file),
                    flate2::Compression::default(),
                );
                enc.write_all(bytes)?;
                let file = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(&self.pending)?.sync_all()
            })();
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(segment::io_error(&path, e));
            }
        }
        let mut value = RECEIPT_FILE.to_vec();
        value.extend_from_slice(name.as_bytes());
        Ok(value)
    }

    /// At opening, when no step is under way: files no pending record names (a step
    /// that did not commit, or a settle cut before it cleaned up) are removed.
    fn drop_unreferenced_receipt_files(&self) -> Result<(), RegistroError> {
        let mut named = std::collections::HashSet::new();
        for item in self.meta.scan_prefix(b"q") {
            let (_, value) = item?;
            if let Some(name) = receipt_file(&value) {
                named.insert(name.to_string());
            }
        }
        let entries =
            std::fs::read_dir(&self.pending).map_err(|e| segment::io_error(&self.pending, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !named.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// The folder of one month's files.
    pub fn month_dir(&self, month: &str) -> std::path::PathBuf {
        self.root.join(month)
    }

    /// The tree a step's transaction joins to append its records ([`append_in`]).
    pub fn tree(&self) -> &sled::Tree {
        &self.meta
    }

    fn head(&self) -> Result<Option<Head>, RegistroError> {
        Ok(self
            .meta
            .get(HEAD)?
            .and_then(|v| serde_json::from_slice::<Head>(&v).ok()))
    }

    /// After a crash in a bulk load the files can be ahead of the head: follow them.
    fn reconcile_head(&self) -> Result<(), RegistroError> {
        let Some(month) = segment::months(&self.root).pop() else {
            return Ok(());
        };
        let Some(last) = segment::last_record(&self.root, &month)? else {
            return Ok(());
        };
        if self.head()?.is_none_or(|h| h.seq < last.seq) {
            self.meta.insert(
                HEAD,
                serde_json::to_vec(&head_of(&last)).unwrap_or_default(),
            )?;
            self.meta.flush()?;
        }
        Ok(())
    }

    /// Appends one event in its own transaction; returns its sequence number.
    pub fn append(
        &self,
        event: &Event,
        time: DateTime<Utc>,
        receipt: Option<&[u8]>,
    ) -> Result<u64, RegistroError> {
        let compressed = receipt.map(|r| self.stage_receipt(r)).transpose()?;
        let result: Result<u64, TransactionError<()>> = self.meta.transaction(|t| {
            append_in(t, event, time, compressed.as_deref())
                .map_err(ConflictableTransactionError::from)
        });
        result.map_err(|e| RegistroError::Storage(format!("{e:?}")))
    }

    /// Moves the records waiting in the store to their months' files, durably, and
    /// then forgets them in the store. Called every second by the daemon and before
    /// every read.
    pub fn settle(&self) -> Result<u64, RegistroError> {
        let _w = writer();
        self.settle_locked()
    }

    fn settle_locked(&self) -> Result<u64, RegistroError> {
        let mut pending = self.meta.scan_prefix(b"p").peekable();
        if pending.peek().is_none() {
            return Ok(0);
        }
        let mut month = segment::months(&self.root).pop();
        let mut written = match &month {
            Some(m) => segment::last_record(&self.root, m)?.map_or(0, |r| r.seq),
            None => 0,
        };
        let mut appender: Option<(String, segment::Appender)> = None;
        let mut done = Vec::new();
        let mut files = Vec::new();
        let mut moved = 0;
        for item in pending {
            let (key, value) = item?;
            let record: Record = serde_json::from_slice(&value)
                .map_err(|e| RegistroError::Corrupt(format!("pending record: {e}")))?;
            // sled's scan is not a snapshot: a gap means a record committed while we
            // scanned; it and what follows wait for the next round, in order.
            if moved > 0 && record.seq != written + 1 {
                break;
            }
            done.push(key.clone());
            let receipt_key = pending_key(b'q', record.seq);
            if record.seq <= written {
                done.push(receipt_key.to_vec().into());
                continue;
            }
            // Months never go back, even if the clock does: verify walks them in order.
            let target = std::cmp::max(month.clone().unwrap_or_default(), record_month(&record));
            if appender.as_ref().is_none_or(|(m, _)| *m != target) {
                if let Some((_, a)) = appender.take() {
                    a.finish()?;
                }
                appender = Some((
                    target.clone(),
                    segment::Appender::open(&self.root, &target)?,
                ));
                month = Some(target);
            }
            let receipt = match self.meta.get(receipt_key)? {
                Some(value) => {
                    done.push(receipt_key.to_vec().into());
                    match receipt_file(&value) {
                        Some(name) => {
                            let path = self.pending.join(name);
                            let bytes =
                                std::fs::read(&path).map_err(|e| segment::io_error(&path, e))?;
                            files.push(path);
                            Some(sled::IVec::from(bytes))
                        }
                        None => Some(value),
                    }
                }
                None => None,
            };
            let id = record.event.message_id.clone().unwrap_or_default();
            if let Some((_, a)) = appender.as_mut() {
                a.push(&record, receipt.as_deref().map(|b| (id.as_str(), b)))?;
            }
            written = record.seq;
            moved += 1;
        }
        if let Some((_, a)) = appender.take() {
            a.finish()?;
        }
        let mut batch = sled::Batch::default();
        for key in done {
            batch.remove(key);
        }
        self.meta.apply_batch(batch)?;
        // After the records are in the month's files and forgotten here; a crash
        // before this leaves files the next opening removes.
        for file in files {
            let _ = std::fs::remove_file(file);
        }
        Ok(moved)
    }

    /// Appends many events quickly, straight to the files (a single writer: an import
    /// or a synthetic load); events must come in time order.
    pub fn append_bulk(
        &self,
        events: impl IntoIterator<Item = (Event, DateTime<Utc>)>,
    ) -> Result<u64, RegistroError> {
        let _w = writer();
        self.settle_locked()?;
        let mut head = self.head()?;
        let mut month = segment::months(&self.root).pop();
        let mut appender: Option<segment::Appender> = None;
        let mut touched = Vec::new();
        let mut count: u64 = 0;
        for (event, time) in events {
            let (record, h) = new_record(head, event, time, false);
            let target = std::cmp::max(month.clone().unwrap_or_default(), record_month(&record));
            if appender.is_none() || month.as_deref() != Some(target.as_str()) {
                if let Some(a) = appender.take() {
                    a.finish()?;
                }
                appender = Some(segment::Appender::open(&self.root, &target)?);
                touched.push(target.clone());
                month = Some(target);
            }
            if let Some(a) = appender.as_mut() {
                a.push(&record, None)?;
            }
            head = Some(h);
            count += 1;
        }
        if let Some(a) = appender.take() {
            a.finish()?;
        }
        if let Some(h) = head {
            self.meta
                .insert(HEAD, serde_json::to_vec(&h).unwrap_or_default())?;
            self.meta.flush()?;
        }
        for m in touched {
            index::compact(&self.root.join(m))?;
        }
        Ok(count)
    }

    /// Months present, oldest first.
    pub fn months(&self) -> Vec<String> {
        segment::months(&self.root)
    }

    /// What an administrator checks at a glance: months kept, space, sealing.
    pub fn summary(&self) -> Result<Summary, RegistroError> {
        Ok(Summary {
            months: self.months(),
            bytes: crate::store::dir_size(&self.root),
            last_sealed: self.checkpoints()?.into_iter().map(|c| c.month).max(),
            records: self.head()?.map_or(0, |h| h.seq),
        })
    }

    /// The records of one month, in file order.
    pub fn records(
        &self,
        month: &str,
    ) -> Result<impl Iterator<Item = Result<Record, RegistroError>>, RegistroError> {
        self.settle()?;
        Ok(segment::Lines::open(&self.root, month)?.map(|line| {
            let (_, _, parsed) = line?;
            parsed.map_err(RegistroError::Corrupt)
        }))
    }

    /// Drops the months older than the `keep` most recent ones (counting `now`'s),
    /// oldest first, each atomically; their checkpoints stay.
    pub fn rotate(
        &self,
        now: DateTime<Utc>,
        keep: u32,
        signer: &crate::smime::Signer,
        provider: &str,
        progress: &dyn Fn(&str),
    ) -> Result<Vec<String>, RegistroError> {
        self.close_months(now, signer, provider)?;
        let oldest_kept = month_minus(&month_of(now), keep.saturating_sub(1))
            .ok_or_else(|| RegistroError::Invalid("bad month".into()))?;
        let mut dropped = Vec::new();
        for month in self.months() {
            if month >= oldest_kept {
                break;
            }
            progress(&month);
            let _w = writer();
            segment::drop_month(&self.root, &month)?;
            dropped.push(month);
        }
        Ok(dropped)
    }
}

fn record_month(r: &Record) -> String {
    r.time.get(..7).unwrap_or_default().to_string()
}
