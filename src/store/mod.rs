//! The store: everything the daemon keeps, in one sled database below `data_dir`.
//!
//! A small interface of its own so the rest of pecbox never touches sled: mailboxes and
//! their folders and messages, the outbound queue, the providers' index, and the state of
//! each PEC transaction. Several changes that must happen together (a message stored and
//! its receipt queued) go through [`Store::atomically`]; [`Store::flush`] makes them
//! durable, and SMTP answers 250 only after it.

//!
//! Everything lives in the default tree of the database, one key prefix per record kind
//! (see `keys`), so that a single sled transaction can span every kind of record.

use serde::{Deserialize, Serialize};

mod blobs;
mod claims;
mod events;
mod folders;
mod index;
mod keys;
mod kv;
mod logged;
mod mailboxes;
mod messages;
mod queue;
mod transactions;

pub use blobs::{Body, INLINE_MAX, SWEEP_MIN_AGE};
pub use events::{MessageChange, StoreEvent};

/// A PEC mailbox (casella) of a managed domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    /// Lower-case address; the key.
    pub address: String,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Bytes; None = unlimited.
    pub quota: Option<u64>,
    pub disabled: bool,
    /// Unix seconds.
    pub created: i64,
    /// What to do with ordinary (non-PEC) mail arriving for this mailbox.
    pub ordinary_mail: OrdinaryMailPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "policy", content = "to")]
pub enum OrdinaryMailPolicy {
    /// Refused at SMTP time with a clear reply (the default).
    #[default]
    Refuse,
    /// Accepted and delivered wrapped in a busta di anomalia.
    Anomalia,
    /// Forwarded to an ordinary address through the smarthost.
    Forward(String),
}

/// A message in a folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub uid: u32,
    /// IMAP-style flags (`\Seen`, `\Deleted`, …).
    pub flags: Vec<String>,
    /// Unix seconds of arrival.
    pub internal_date: i64,
    pub size: u64,
}

/// A folder's IMAP identity (stable across restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderState {
    pub uidvalidity: u32,
    pub uidnext: u32,
}

/// Per-recipient state of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRecipient {
    pub address: String,
    pub state: RecipientState,
    /// Last SMTP answer or error, for the holder and the log.
    pub last_reply: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecipientState {
    Pending,
    Delivered,
    Failed,
}

/// A message waiting to leave for one next hop (a destination domain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub id: u64,
    /// Destination domain: the next hop is its route or MX.
    pub domain: String,
    pub mail_from: String,
    pub recipients: Vec<QueuedRecipient>,
    /// Unix seconds.
    pub created: i64,
    pub attempts: u32,
    pub next_attempt: i64,
    /// What it is (busta, receipt, …) and which transaction, for logs.
    pub label: String,
}

/// One provider of the providers' index (RFC 6109 §5.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderEntry {
    /// providerName: the key.
    pub name: String,
    pub domains: Vec<String>,
    /// mailReceipt: service mailbox for presa in carico and rilevazione virus.
    pub mail_receipt: String,
    /// providerCertificate values (DER).
    pub certificates: Vec<Vec<u8>>,
    /// providerCertificateHash values: lower-case hex SHA-1 of each certificate.
    pub certificate_hashes: Vec<String>,
}

/// What the sender's provider still awaits for one recipient of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedRecipient {
    pub address: String,
    /// certificato recipients get receipts; esterno ones never do.
    pub certified: bool,
    /// Unix seconds, when received.
    pub presa_in_carico: Option<i64>,
    pub consegna: Option<i64>,
    /// An avviso di mancata consegna (or virus) was received or emitted.
    pub failed: Option<i64>,
    pub notice_12h: Option<i64>,
    pub notice_24h: Option<i64>,
}

/// A PEC transaction on the sender's side, keyed by identificativo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub identificativo: String,
    pub sender: String,
    pub subject: String,
    /// The client's Message-ID, with brackets.
    pub msgid: Option<String>,
    /// Unix seconds of acceptance (the busta's riferimento temporale).
    pub accepted: i64,
    pub recipients: Vec<TrackedRecipient>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Backend(String),
    #[error("corrupt record under {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("mailbox {0} already exists")]
    MailboxExists(String),
    #[error("no mailbox {0}")]
    NoMailbox(String),
    #[error("mailbox {address} is over quota ({used} of {quota} bytes used)")]
    OverQuota {
        address: String,
        used: u64,
        quota: u64,
    },
    #[error("no folder {folder} in {address}")]
    NoFolder { address: String, folder: String },
    #[error("folder {0} already exists")]
    FolderExists(String),
    /// Empty, or containing NUL (the key separator).
    #[error("invalid name {0:?}")]
    InvalidName(String),
    #[error("folder INBOX cannot be deleted")]
    InboxUndeletable,
    #[error("no queue entry {0}")]
    NoQueueEntry(u64),
    /// A 32-bit counter (a folder's uids, uidvalidity) has no values left.
    #[error("{0} exhausted")]
    Exhausted(&'static str),
    /// An operation that scans first kept meeting concurrent changes.
    #[error("gave up after {0} attempts disturbed by concurrent changes")]
    Contention(u32),
}

/// Folder names every mailbox has (IMAP special-use later).
pub const INBOX: &str = "INBOX";
pub const SENT: &str = "Sent";

/// Bytes of every file below `dir` (the store with its registro files, say).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// sled's cache when the configuration does not say (`[storage] cache_mb`).
pub const DEFAULT_CACHE_MB: u64 = 32;

/// The database. Cheap to clone; all methods are safe from many threads.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    dir: std::path::PathBuf,
    events: std::sync::Arc<events::Hub>,
    blobs: std::sync::Arc<blobs::Blobs>,
}

/// The operations of [`Store`] that may run inside [`Store::atomically`]: all or none
/// of them take effect. The closure may run more than once (on conflict), so it must
/// not have other side effects.
pub struct Txn<'a> {
    tree: &'a sled::transaction::TransactionalTree,
    blobs: &'a blobs::Blobs,
    /// A sled failure met inside the closure: it decides between retry and storage
    /// error even if the closure swallowed the `StoreError` we returned for it.
    failure: Option<sled::transaction::UnabortableTransactionError>,
}

impl Store {
    /// Opens (creating) the database in `dir`, with a cache fit for a small box.
    pub fn open(dir: &std::path::Path) -> Result<Self, StoreError> {
        Self::open_sized(dir, DEFAULT_CACHE_MB)
    }

    /// Opens (creating) the database in `dir` with a page cache of `cache_mb` MiB
    /// (`[storage] cache_mb`).
    pub fn open_sized(dir: &std::path::Path, cache_mb: u64) -> Result<Self, StoreError> {
        let db = sled::Config::default()
            .path(dir)
            .cache_capacity(cache_mb.max(1) * 1024 * 1024)
            .open()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self {
            blobs: std::sync::Arc::new(blobs::Blobs::open(dir)?),
            db,
            dir: dir.to_path_buf(),
            events: Default::default(),
        })
    }

    /// The folder the database lives in (the registro keeps its month files there).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Like [`Store::open`], waiting up to `patience` while another handle lets go of
    /// the database: sled releases its lock when its background flusher ends, a moment
    /// after the last handle is dropped (a daemon stopping, a command ending).
    pub fn open_waiting(
        dir: &std::path::Path,
        patience: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Self::open(dir) {
                Err(e)
                    if e.to_string().contains("lock") && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// Makes everything written so far durable (fsync).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    /// Runs `f` as one transaction: if it returns an error nothing it did takes effect.
    ///
    /// sled serializes transactions with a global lock held while `f` runs, so `f` must
    /// be short and must not call methods of any [`Store`] (that would deadlock).
    pub fn atomically<T>(
        &self,
        f: impl Fn(&mut Txn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let result = self.db.transaction(|tree| {
            let mut txn = Txn {
                tree,
                blobs: &self.blobs,
                failure: None,
            };
            let out = f(&mut txn);
            if let Some(failure) = txn.failure.take() {
                // Conflict → sled retries; Storage → reported as such.
                return Err(ConflictableTransactionError::from(failure));
            }
            out.map_err(ConflictableTransactionError::Abort)
        });
        result.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Backend(e.to_string()),
        })
    }

    /// A fresh number, strictly increasing across restarts (and crashes).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        self.db
            .generate_id()
            .map(|id| id + 1)
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    /// The underlying database, for tests that need to plant raw records.
    #[doc(hidden)]
    pub fn raw_db(&self) -> &sled::Db {
        &self.db
    }
}
