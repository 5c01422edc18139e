//! Exactly-once markers: a received message+recipient is processed once even if the
//! sender retries after a crash.

use super::kv::Kv;
use super::{keys, Store, StoreError, Txn};

impl Txn<'_> {
    /// Records `key`: true the first time, false if it was already claimed.
    pub fn claim(&mut self, key: &str) -> Result<bool, StoreError> {
        let k = keys::claim(key);
        if self.get(&k)?.is_some() {
            return Ok(false);
        }
        // The time, so that old claims can be pruned one day.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.put(k, now.to_be_bytes().to_vec())?;
        Ok(true)
    }

    pub fn claimed(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(self.get(&keys::claim(key))?.is_some())
    }
}

impl Store {
    /// Records `key`: true the first time, false if it was already claimed.
    pub fn claim(&self, key: &str) -> Result<bool, StoreError> {
        self.atomically(|t| t.claim(key))
    }

    pub fn claimed(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.direct().get(&keys::claim(key))?.is_some())
    }
}
