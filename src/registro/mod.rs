//! Registro dei log (pec-rules §1.3; DPR 68/2005: 30 months): every event of the
//! provider, hash-chained, one folder of append-only files per month, each closed month
//! sealed by a checkpoint signed with the provider's key. Receipts and notices the
//! provider emitted are kept compressed beside the events, so a lost receipt can be
//! reproduced.
//!
//! A record is born inside the store transaction of the step it describes (its
//! sequence number and chain link come from the head kept in the store's `registro`
//! tree), waits there, and is moved to `<store>/registro/YYYY-MM/` by
//! [`Registro::settle`] (segment.rs: the files; index.rs: how they are searched). The
//! `registro` tree also keeps the checkpoints, which outlive rotation.

mod event;
mod index;
mod segment;

pub use event::{Event, EventKind, ALL as ALL_KINDS};

use std::io::{Read, Write};

use base64::Engine;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use ring::digest;
use serde::{Deserialize, Serialize};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

use crate::pec::timestamp::PecTime;

const META_TREE: &str = "registro";
/// The months' folder, inside the store's.
const ROOT: &str = "registro";
/// Where months lived in the store before they had files (migrated at opening).
const OLD_MONTH_TREE: &str = "registro-";
const HEAD: &[u8] = b"head";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

/// One record of the registro.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339 in Italian legal time.
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
    /// A copy of the message this event emitted is kept (`pecbox log receipt`).
    #[serde(default)]
    pub receipt: bool,
    /// Hash of the previous record (hex SHA-256).
    pub prev: String,
    /// SHA-256 over `prev` and everything above.
    pub hash: String,
}

/// The part of a record the hash covers, in a fixed field order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    time: &'a str,
    #[serde(flatten)]
    event: &'a Event,
    receipt: bool,
}

impl Record {
    fn compute_hash(&self) -> String {
        let body = serde_json::to_vec(&Hashed {
            seq: self.seq,
            time: &self.time,
            event: &self.event,
            receipt: self.receipt,
        })
        .unwrap_or_default();
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(self.prev.as_bytes());
        ctx.update(&body);
        hex(ctx.finish().as_ref())
    }

    pub fn utc(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.time)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    seq: u64,
    #[serde(with = "hex_array")]
    hash: [u8; 32],
}

mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if text.len() != 64 {
            return Err(serde::de::Error::custom("bad hash length"));
        }
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}

/// The seal of a closed month: its last record and hash, signed by the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub month: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u64,
    /// Hash of the record before the month (the chain link into it).
    pub prev_hash: String,
    pub last_hash: String,
    pub provider: String,
    pub created: String,
    /// Base64 DER CMS (detached) over the JSON of the fields above.
    #[serde(default)]
    pub signature: String,
}

#[derive(Serialize)]
struct CheckpointBody<'a> {
    month: &'a str,
    first_seq: u64,
    last_seq: u64,
    count: u64,
    prev_hash: &'a str,
    last_hash: &'a str,
    provider: &'a str,
    created: &'a str,
}

impl Checkpoint {
    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&CheckpointBody {
            month: &self.month,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            count: self.count,
            prev_hash: &self.prev_hash,
            last_hash: &self.last_hash,
            provider: &self.provider,
            created: &self.created,
        })
        .unwrap_or_default()
    }

    fn sign(&mut self, signer: &crate::smime::Signer) -> Result<(), RegistroError> {
        let der = signer
            .sign_detached(&self.signed_bytes(), Utc::now())
            .map_err(|e| RegistroError::Signing(e.to_string()))?;
        self.signature = base64::engine::general_purpose::STANDARD.encode(der);
        Ok(())
    }

    /// Checks the signature (and, with anchors, who made it). Returns the signer.
    pub fn verify(&self, anchors: &[Vec<u8>]) -> Result<String, String> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|_| format!("checkpoint {}: signature is not base64", self.month))?;
        let options = crate::smime::VerifyOptions {
            anchors: anchors.to_vec(),
            at: None,
        };
        let v = crate::smime::verify_detached(&self.signed_bytes(), &der, &options)
            .map_err(|e| format!("checkpoint {}: {e}", self.month))?;
        if let Err(e) = &v.integrity {
            return Err(format!(
                "checkpoint {}: signature does not match: {e}",
                self.month
            ));
        }
        if !anchors.is_empty() && !v.is_valid() {
            return Err(format!(
                "checkpoint {}: {}",
                self.month,
                v.problems().join("; ")
            ));
        }
        Ok(v.signer.map(|s| s.subject).unwrap_or_default())
    }
}

/// What to look for; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub identificativo: Option<String>,
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub kind: Option<EventKind>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

/// The result of a chain check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub months: Vec<String>,
    pub checkpoints: u64,
    /// The first problem: sequence number and what is wrong.
    pub broken: Option<(u64, String)>,
    pub signer: Option<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
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
}

/// `YYYY-MM` of an instant, in Italian legal time (months are the holder's months).
pub fn month_of(t: DateTime<Utc>) -> String {
    let local = PecTime::italian(t).datetime();
    format!("{:04}-{:02}", local.year(), local.month())
}

/// The month `n` months before `month` (`YYYY-MM`).
pub fn month_minus(month: &str, n: u32) -> Option<String> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
    let index = y * 12 + (m - 1) - i64::from(n);
    Some(format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    ))
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type TxResult<T> = Result<T, UnabortableTransactionError>;

fn pending_key(prefix: u8, seq: u64) -> [u8; 9] {
    let mut k = [prefix; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn new_record(
    head: Option<Head>,
    event: Event,
    time: DateTime<Utc>,
    receipt: bool,
) -> (Record, Head) {
    let (seq, prev) = match head {
        Some(h) => (h.seq + 1, hex(&h.hash)),
        None => (1, GENESIS.to_string()),
    };
    let mut record = Record {
        seq,
        time: PecTime::italian(time).datetime().to_rfc3339(),
        event,
        receipt,
        prev,
        hash: String::new(),
    };
    record.hash = record.compute_hash();
    let mut hash = [0u8; 32];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&record.hash[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    (record, Head { seq, hash })
}

/// Appends inside a transaction over the registro's tree (see [`Registro::trees_for`]):
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
        let registro = Self {
            meta: store.raw_db().open_tree(META_TREE)?,
            root,
        };
        {
            let _w = writer();
            segment::recover(&registro.root)?;
            registro.migrate_sled_months(store.raw_db())?;
            registro.reconcile_head()?;
        }
        Ok(registro)
    }

    /// Stores made before the month files kept each month in a sled tree
    /// `registro-YYYY-MM` (`r` + seq → record, `c` + message-id → receipt): move them
    /// into the files, oldest first, then drop the tree. Re-run safely after a crash.
    fn migrate_sled_months(&self, db: &sled::Db) -> Result<(), RegistroError> {
        let mut trees: Vec<String> = db
            .tree_names()
            .iter()
            .filter_map(|n| std::str::from_utf8(n).ok())
            .filter_map(|n| n.strip_prefix(OLD_MONTH_TREE))
            .map(str::to_string)
            .collect();
        trees.sort();
        for month in trees {
            let name = format!("{OLD_MONTH_TREE}{month}");
            let tree = db.open_tree(&name)?;
            let written = segment::months(&self.root)
                .pop()
                .map(|m| segment::last_record(&self.root, &m))
                .transpose()?
                .flatten()
                .map_or(0, |r| r.seq);
            let mut appender = None;
            for item in tree.scan_prefix(b"r") {
                let (_, value) = item?;
                let record: Record = serde_json::from_slice(&value)
                    .map_err(|e| RegistroError::Corrupt(format!("{name}: {e}")))?;
                if record.seq <= written {
                    continue;
                }
                let id = record.event.message_id.clone().unwrap_or_default();
                let receipt = match (record.receipt, id.is_empty()) {
                    (true, false) => {
                        let mut key = vec![b'c'];
                        key.extend_from_slice(
                            index::strip_angles(&id).to_ascii_lowercase().as_bytes(),
                        );
                        tree.get(key)?
                    }
                    _ => None,
                };
                if appender.is_none() {
                    appender = Some(segment::Appender::open(&self.root, &month)?);
                }
                if let Some(a) = appender.as_mut() {
                    a.push(&record, receipt.as_deref().map(|b| (id.as_str(), b)))?;
                }
            }
            if let Some(a) = appender {
                a.finish()?;
                index::compact(&self.root.join(&month))?;
            }
            db.drop_tree(name)?;
            tracing::info!(month, "registro: month moved from the store to its files");
        }
        Ok(())
    }

    /// The folder of one month's files.
    pub fn month_dir(&self, month: &str) -> std::path::PathBuf {
        self.root.join(month)
    }

    /// The trees a record is written to inside a step's transaction: [registro].
    pub fn trees_for(&self, _time: DateTime<Utc>) -> Result<[sled::Tree; 1], RegistroError> {
        Ok([self.meta.clone()])
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
        let compressed = receipt.map(compress);
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
                Some(bytes) => {
                    done.push(receipt_key.to_vec().into());
                    Some(bytes)
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
            bytes: segment::size(&self.root),
            last_sealed: self.checkpoints()?.into_iter().map(|c| c.month).max(),
            records: self.head()?.map_or(0, |h| h.seq),
        })
    }

    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, RegistroError> {
        let mut out = Vec::new();
        for item in self.meta.scan_prefix(b"cp/") {
            let (_, v) = item?;
            out.push(
                serde_json::from_slice(&v)
                    .map_err(|e| RegistroError::Corrupt(format!("checkpoint: {e}")))?,
            );
        }
        Ok(out)
    }

    fn checkpoint(&self, month: &str) -> Result<Option<Checkpoint>, RegistroError> {
        match self.meta.get(format!("cp/{month}"))? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| RegistroError::Corrupt(format!("checkpoint {month}: {e}"))),
            None => Ok(None),
        }
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

    /// Records matching `q`, oldest first.
    pub fn search(&self, q: &Query) -> Result<Vec<Record>, RegistroError> {
        self.settle()?;
        // A record lies in its own month's folder, or in a later one marked backdated.
        let months: Vec<String> = self
            .months()
            .into_iter()
            .filter(|m| q.since.is_none_or(|t| *m >= month_of(t)))
            .filter(|m| {
                q.until.is_none_or(|t| *m <= month_of(t)) || segment::has_backdated(&self.root, m)
            })
            .collect();
        // Every indexed field given narrows the candidates (offsets intersected), so a
        // holder's logins are not found by reading all the holder's records.
        let keys: Vec<u64> = [
            q.identificativo.as_deref().map(index::key_identificativo),
            q.message_id.as_deref().map(index::key_message_id),
            q.sender.as_deref().map(index::key_sender),
            q.recipient.as_deref().map(index::key_recipient),
            q.kind.map(|k| index::key_kind(k.as_str())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut out = Vec::new();
        for month in months {
            let mut keep = |r: Record| {
                if matches(&r, q) {
                    out.push(r);
                }
                q.limit.is_some_and(|l| out.len() >= l)
            };
            if keys.is_empty() {
                for line in segment::Lines::open(&self.root, &month)? {
                    if let (_, _, Ok(r)) = line? {
                        if keep(r) {
                            return Ok(out);
                        }
                    }
                }
            } else {
                let offsets = {
                    let _r = reader();
                    let dir = self.root.join(&month);
                    let mut found: Option<Vec<u64>> = None;
                    for key in &keys {
                        let hits = index::lookup(&dir, *key)?;
                        found = Some(match found {
                            None => hits,
                            Some(before) => intersect(&before, &hits),
                        });
                        if found.as_ref().is_some_and(Vec::is_empty) {
                            break;
                        }
                    }
                    found.unwrap_or_default()
                };
                let mut reader = segment::RecordReader::open(&self.root, &month)?;
                for offset in offsets {
                    if offset & index::RECEIPT_FLAG != 0 {
                        continue;
                    }
                    if let Some(r) = reader.at(offset) {
                        if keep(r) {
                            return Ok(out);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every record of one transaction, as a timeline.
    pub fn timeline(&self, identificativo: &str) -> Result<Vec<Record>, RegistroError> {
        let mut records = self.search(&Query {
            identificativo: Some(identificativo.to_string()),
            ..Query::default()
        })?;
        records.sort_by_key(|r| r.seq);
        Ok(records)
    }

    /// The signed bytes of a receipt or notice this provider emitted.
    pub fn receipt(&self, message_id: &str) -> Result<Option<Vec<u8>>, RegistroError> {
        self.settle()?;
        for month in self.months().iter().rev() {
            if let Some(v) = self.kept_receipt(month, message_id)? {
                return decompress(&v).map(Some);
            }
        }
        Ok(None)
    }

    /// The compressed receipt kept in `month` under `message_id`.
    fn kept_receipt(
        &self,
        month: &str,
        message_id: &str,
    ) -> Result<Option<Vec<u8>>, RegistroError> {
        let key = index::key_receipt(message_id);
        let offsets = {
            let _r = reader();
            index::lookup(&self.root.join(month), key)?
        };
        for offset in offsets {
            if offset & index::RECEIPT_FLAG == 0 {
                continue;
            }
            let at = offset & !index::RECEIPT_FLAG;
            if let Some(v) = segment::receipt_at(&self.root, month, at, message_id)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Seals every month before `now`'s that has no checkpoint yet and folds every
    /// month's new index entries into its sorted index.
    pub fn close_months(
        &self,
        now: DateTime<Utc>,
        signer: &crate::smime::Signer,
        provider: &str,
    ) -> Result<Vec<String>, RegistroError> {
        self.settle()?;
        let current = month_of(now);
        let mut closed = Vec::new();
        for month in self.months() {
            if month < current
                && !segment::is_empty(&self.root, &month)
                && self.checkpoint(&month)?.is_none()
            {
                let cp = self.make_checkpoint(&month, signer, provider)?;
                self.meta.insert(
                    format!("cp/{month}"),
                    serde_json::to_vec(&cp).unwrap_or_default(),
                )?;
                closed.push(month.clone());
            }
            let _w = writer();
            index::compact(&self.root.join(&month))?;
        }
        self.meta.flush()?;
        Ok(closed)
    }

    fn make_checkpoint(
        &self,
        month: &str,
        signer: &crate::smime::Signer,
        provider: &str,
    ) -> Result<Checkpoint, RegistroError> {
        let mut first: Option<Record> = None;
        let mut last: Option<Record> = None;
        let mut count = 0;
        for r in self.records(month)? {
            let r = r?;
            if first.is_none() {
                first = Some(r.clone());
            }
            last = Some(r);
            count += 1;
        }
        let (first, last) = match (first, last) {
            (Some(f), Some(l)) => (f, l),
            _ => return Err(RegistroError::Invalid(format!("month {month} is empty"))),
        };
        let mut cp = Checkpoint {
            month: month.to_string(),
            first_seq: first.seq,
            last_seq: last.seq,
            count,
            prev_hash: first.prev,
            last_hash: last.hash,
            provider: provider.to_string(),
            created: Utc::now().to_rfc3339(),
            signature: String::new(),
        };
        cp.sign(signer)?;
        Ok(cp)
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

    /// Checks the whole chain of the live registro and every checkpoint.
    pub fn verify(
        &self,
        anchors: &[Vec<u8>],
        progress: &dyn Fn(u64),
    ) -> Result<VerifyReport, RegistroError> {
        self.settle()?;
        let checkpoints = self.checkpoints()?;
        let months = self.months();
        let mut report = VerifyReport {
            months: months.clone(),
            ..VerifyReport::default()
        };
        // Where the chain starts: after the newest checkpoint older than what is left.
        let start = months.first().and_then(|first| {
            checkpoints
                .iter()
                .filter(|c| c.month < *first)
                .max_by(|a, b| a.month.cmp(&b.month))
        });
        let mut chain = Chain::new(start.map(|c| (c.last_seq, c.last_hash.clone())));
        for month in &months {
            let mut count = 0;
            for line in segment::Lines::open(&self.root, month)? {
                let record = match line? {
                    (_, _, Ok(r)) => r,
                    (_, _, Err(e)) => {
                        let seq = chain.expected_seq();
                        report.broken =
                            Some((seq, format!("record {seq} is unreadable in {month}: {e}")));
                        return Ok(report);
                    }
                };
                if let Err(broken) = chain.check(&record) {
                    report.broken = Some(broken);
                    return Ok(report);
                }
                count += 1;
                report.records += 1;
                if report.records.is_multiple_of(10_000) {
                    progress(report.records);
                }
            }
            if let Some(cp) = checkpoints.iter().find(|c| c.month == *month) {
                report.checkpoints += 1;
                if let Some(broken) = check_checkpoint(cp, &chain, count, anchors, &mut report) {
                    report.broken = Some(broken);
                    return Ok(report);
                }
            }
        }
        // Records cut from the end leave the files short of the head. Checked with
        // the files held still: steps go on committing while we walk.
        {
            let _w = writer();
            let head = self.head()?;
            self.settle_locked()?;
            let files_end = match segment::months(&self.root).last() {
                Some(m) => segment::last_record(&self.root, m)?.map_or(0, |r| r.seq),
                None => checkpoints.iter().map(|c| c.last_seq).max().unwrap_or(0),
            };
            let waiting = self.meta.contains_key(pending_key(b'p', files_end + 1))?;
            if let Some(head) = head.filter(|h| h.seq > files_end && !waiting) {
                let next = files_end + 1;
                report.broken = Some((
                    next,
                    format!(
                        "record {next} is missing (the files end at {files_end}, the registro at {})",
                        head.seq
                    ),
                ));
                return Ok(report);
            }
        }
        for cp in checkpoints.iter().filter(|c| !months.contains(&c.month)) {
            if let Err(e) = cp.verify(anchors) {
                report.broken = Some((cp.last_seq, e));
                return Ok(report);
            }
        }
        progress(report.records);
        Ok(report)
    }

    /// A self-contained file with one month: its records, the receipts kept with
    /// them, the checkpoint that seals it (made now if the month is still open) and
    /// the certificate to check it with.
    pub fn export(
        &self,
        month: &str,
        signer: &crate::smime::Signer,
        provider: &str,
    ) -> Result<Vec<u8>, RegistroError> {
        self.settle()?;
        if !self.months().iter().any(|m| m == month) {
            return Err(RegistroError::Invalid(format!("no records for {month}")));
        }
        let checkpoint = match self.checkpoint(month)? {
            Some(cp) => cp,
            None => self.make_checkpoint(month, signer, provider)?,
        };
        let records: Vec<Record> = self.records(month)?.collect::<Result<_, _>>()?;
        let mut receipts = std::collections::BTreeMap::new();
        for r in records.iter().filter(|r| r.receipt) {
            let Some(id) = r.event.message_id.as_deref() else {
                continue;
            };
            if let Some(data) = self.kept_receipt(month, id)? {
                let id = index::strip_angles(id).to_ascii_lowercase();
                receipts.insert(id, base64::engine::general_purpose::STANDARD.encode(data));
            }
        }
        let export = Export {
            format: EXPORT_FORMAT.into(),
            month: month.to_string(),
            provider: provider.to_string(),
            certificate: pem::encode(&pem::Pem::new(
                "CERTIFICATE",
                signer.certificate_der().to_vec(),
            )),
            checkpoint,
            records,
            receipts,
        };
        serde_json::to_vec_pretty(&export).map_err(|e| RegistroError::Corrupt(e.to_string()))
    }
}

/// The common elements of two ascending lists.
fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn record_month(r: &Record) -> String {
    r.time.get(..7).unwrap_or_default().to_string()
}

fn head_of(r: &Record) -> Head {
    let mut hash = [0u8; 32];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = r
            .hash
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    Head { seq: r.seq, hash }
}
const EXPORT_FORMAT: &str = "pecbox-registro/1";

#[derive(Debug, Serialize, Deserialize)]
pub struct Export {
    pub format: String,
    pub month: String,
    pub provider: String,
    /// PEM of the signing certificate (a convenience: trust comes from `--ca`).
    pub certificate: String,
    pub checkpoint: Checkpoint,
    pub records: Vec<Record>,
    /// message-id → base64 of the compressed receipt.
    pub receipts: std::collections::BTreeMap<String, String>,
}

/// Verifies an exported month on its own.
pub fn verify_export(bytes: &[u8], anchors: &[Vec<u8>]) -> Result<VerifyReport, RegistroError> {
    let export: Export = serde_json::from_slice(bytes)
        .map_err(|e| RegistroError::Invalid(format!("not a registro export: {e}")))?;
    if export.format != EXPORT_FORMAT {
        return Err(RegistroError::Invalid(format!(
            "unknown export format {}",
            export.format
        )));
    }
    let mut report = VerifyReport {
        months: vec![export.month.clone()],
        ..VerifyReport::default()
    };
    let cp = &export.checkpoint;
    let mut chain = Chain::new(Some((cp.first_seq.saturating_sub(1), cp.prev_hash.clone())));
    for record in &export.records {
        if let Err(broken) = chain.check(record) {
            report.broken = Some(broken);
            return Ok(report);
        }
        report.records += 1;
    }
    report.checkpoints = 1;
    if let Some(broken) = check_checkpoint(cp, &chain, report.records, anchors, &mut report) {
        report.broken = Some(broken);
    }
    Ok(report)
}

fn check_checkpoint(
    cp: &Checkpoint,
    chain: &Chain,
    count: u64,
    anchors: &[Vec<u8>],
    report: &mut VerifyReport,
) -> Option<(u64, String)> {
    if cp.count != count || cp.last_seq + 1 != chain.expected_seq() || cp.last_hash != chain.prev {
        return Some((
            cp.last_seq,
            format!(
                "month {} does not match its checkpoint (records {count} vs {}, last {} vs {})",
                cp.month,
                cp.count,
                chain.expected_seq().saturating_sub(1),
                cp.last_seq
            ),
        ));
    }
    match cp.verify(anchors) {
        Ok(signer) => {
            report.signer = Some(signer);
            None
        }
        Err(e) => Some((cp.last_seq, e)),
    }
}

/// Walks records in order and says where the chain breaks.
struct Chain {
    next: Option<u64>,
    prev: String,
}

impl Chain {
    fn new(start: Option<(u64, String)>) -> Self {
        match start {
            Some((last_seq, last_hash)) => Self {
                next: Some(last_seq + 1),
                prev: last_hash,
            },
            None => Self {
                next: None,
                prev: GENESIS.to_string(),
            },
        }
    }

    fn expected_seq(&self) -> u64 {
        self.next.unwrap_or(1)
    }

    fn check(&mut self, r: &Record) -> Result<(), (u64, String)> {
        let expected = self
            .next
            .unwrap_or(if r.prev == GENESIS { 1 } else { r.seq });
        if r.seq != expected {
            return Err((
                expected,
                format!(
                    "record {expected} is missing or out of place (found {} there)",
                    r.seq
                ),
            ));
        }
        if self.next.is_some() && r.prev != self.prev {
            return Err((
                r.seq,
                format!("record {} does not follow record {}", r.seq, r.seq - 1),
            ));
        }
        if r.compute_hash() != r.hash {
            return Err((r.seq, format!("record {} was altered", r.seq)));
        }
        self.next = Some(r.seq + 1);
        self.prev = r.hash.clone();
        Ok(())
    }
}

fn matches(r: &Record, q: &Query) -> bool {
    let eq = |a: &Option<String>, b: &Option<String>| match b {
        None => true,
        Some(b) => a.as_deref().is_some_and(|a| {
            a.trim_start_matches('<')
                .trim_end_matches('>')
                .eq_ignore_ascii_case(b.trim_start_matches('<').trim_end_matches('>'))
        }),
    };
    let e = &r.event;
    eq(&e.identificativo, &q.identificativo)
        && (eq(&e.message_id, &q.message_id) || eq(&e.original_message_id, &q.message_id))
        && eq(&e.sender, &q.sender)
        && q.recipient
            .as_ref()
            .is_none_or(|want| e.recipients.iter().any(|x| x.eq_ignore_ascii_case(want)))
        && q.kind.is_none_or(|k| e.kind == Some(k))
        && q.since.is_none_or(|t| r.utc().is_some_and(|rt| rt >= t))
        && q.until.is_none_or(|t| r.utc().is_some_and(|rt| rt <= t))
}

/// The month after `month` (`YYYY-MM`).
pub fn month_after(month: &str) -> Option<String> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    Some(if m >= 12 {
        format!("{:04}-01", y + 1)
    } else {
        format!("{y:04}-{:02}", m + 1)
    })
}

/// The instant an Italian month begins (midnight in Rome).
pub fn month_start_italian(month: &str) -> Option<DateTime<Utc>> {
    let (y, m) = month.split_once('-')?;
    chrono_tz::Europe::Rome
        .with_ymd_and_hms(y.parse().ok()?, m.parse().ok()?, 1, 0, 0, 0)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Midnight UTC of the first day of `YYYY-MM` (for synthetic clocks in tests).
pub fn month_start(month: &str) -> Option<DateTime<Utc>> {
    let (y, m) = month.split_once('-')?;
    Utc.with_ymd_and_hms(y.parse().ok()?, m.parse().ok()?, 1, 0, 0, 0)
        .single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_arithmetic() {
        assert_eq!(month_minus("2026-03", 2).as_deref(), Some("2026-01"));
        assert_eq!(month_minus("2026-03", 3).as_deref(), Some("2025-12"));
        assert_eq!(month_minus("2026-01", 29).as_deref(), Some("2023-08"));
        // Italian months: 23:30 UTC on 31 Jan is already February in Rome.
        let t = Utc.with_ymd_and_hms(2026, 1, 31, 23, 30, 0).unwrap();
        assert_eq!(month_of(t), "2026-02");
        assert_eq!(month_after("2026-12").as_deref(), Some("2027-01"));
        assert_eq!(month_after("2026-03").as_deref(), Some("2026-04"));
        // Rome is UTC+1 in winter, UTC+2 in summer.
        assert_eq!(
            month_start_italian("2026-02"),
            Some(Utc.with_ymd_and_hms(2026, 1, 31, 23, 0, 0).unwrap())
        );
        assert_eq!(
            month_start_italian("2026-07"),
            Some(Utc.with_ymd_and_hms(2026, 6, 30, 22, 0, 0).unwrap())
        );
    }
}
