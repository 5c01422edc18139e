//! Raw access shared by direct reads and transactions: get, encode and decode, scans,
//! counters, and the retry loop of the operations that must scan before they write.

use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::UnabortableTransactionError;
use sled::IVec;

use super::{keys, Store, StoreError, Txn};

/// How often a scan-then-write operation retries before giving up.
const MAX_ATTEMPTS: u32 = 32;

pub(super) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(super) fn corrupt(key: &[u8], reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: keys::display(key),
        reason: reason.to_string(),
    }
}

pub(super) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(key, e))
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(backend)
}

/// Point reads, from the tree directly or from inside a transaction.
pub(super) trait Kv {
    fn get(&mut self, key: &[u8]) -> Result<Option<IVec>, StoreError>;

    fn get_json<T: DeserializeOwned>(&mut self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.get(key)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }
}

/// Reads outside any transaction.
pub(super) struct Direct<'a>(&'a sled::Db);

impl Kv for Direct<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        self.0.get(key).map_err(backend)
    }
}

impl Kv for Txn<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        let got = self.tree.get(key);
        got.map_err(|e| self.fail(e))
    }
}

impl Txn<'_> {
    fn fail(&mut self, e: UnabortableTransactionError) -> StoreError {
        let err = backend(&e);
        self.failure.get_or_insert(e);
        err
    }

    pub(super) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        let done = self.tree.insert(key, value);
        done.map(drop).map_err(|e| self.fail(e))
    }

    pub(super) fn put_json<T: Serialize>(
        &mut self,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = encode(value)?;
        self.put(key, bytes)
    }

    /// Removes `key`, returning what it held.
    pub(super) fn del(&mut self, key: Vec<u8>) -> Result<Option<IVec>, StoreError> {
        let done = self.tree.remove(key);
        done.map_err(|e| self.fail(e))
    }

    /// A fresh id from sled's persistent generator (never reused, even after a crash).
    pub fn next_id(&mut self) -> Result<u64, StoreError> {
        let id = self.tree.generate_id();
        id.map(|id| id + 1)
            .map_err(|e| self.fail(UnabortableTransactionError::Storage(e)))
    }

    /// Increments the u64 counter `name`, returning the new value.
    pub(super) fn bump_u64(&mut self, name: &str) -> Result<u64, StoreError> {
        let key = keys::counter(name);
        let last = match self.get(&key)? {
            Some(b) => u64::from_be_bytes(
                b.as_ref()
                    .try_into()
                    .map_err(|_| corrupt(&key, "not a u64"))?,
            ),
            None => 0,
        };
        let next = last
            .checked_add(1)
            .ok_or(StoreError::Exhausted("counter"))?;
        self.put(key, next.to_be_bytes().to_vec())?;
        Ok(next)
    }

    /// Sets the u32 counter `name` to max(last + 1, `floor`) and returns it.
    pub(super) fn bump_u32_at_least(
        &mut self,
        name: &'static str,
        floor: u32,
    ) -> Result<u32, StoreError> {
        let key = keys::counter(name);
        let last = match self.get(&key)? {
            Some(b) => u32::from_be_bytes(
                b.as_ref()
                    .try_into()
                    .map_err(|_| corrupt(&key, "not a u32"))?,
            ),
            None => 0,
        };
        let next = last
            .checked_add(1)
            .ok_or(StoreError::Exhausted(name))?
            .max(floor);
        self.put(key, next.to_be_bytes().to_vec())?;
        Ok(next)
    }
}

impl Store {
    pub(super) fn direct(&self) -> Direct<'_> {
        Direct(&self.db)
    }

    /// Keys (with values) under `prefix`, in key order.
    pub(super) fn scan(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(IVec, IVec), StoreError>> + '_ {
        self.db
            .scan_prefix(prefix)
            .map(|item| item.map_err(backend))
    }

    /// Decoded records under `prefix`, in key order.
    pub(super) fn scan_json<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(IVec, T)>, StoreError> {
        self.scan(prefix)
            .map(|item| {
                let (key, value) = item?;
                let record = decode(&key, &value)?;
                Ok((key, record))
            })
            .collect()
    }

    /// Runs `attempt` (scan, then a transaction that checks the scan is still valid)
    /// until it returns `Some`. Transactions cannot scan in sled 0.34.
    pub(super) fn retrying<T>(
        &self,
        mut attempt: impl FnMut() -> Result<Option<T>, StoreError>,
    ) -> Result<T, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            if let Some(done) = attempt()? {
                return Ok(done);
            }
        }
        Err(StoreError::Contention(MAX_ATTEMPTS))
    }
}
