//! PEC transactions on the sender's side, with a secondary set of the open ones.

use super::kv::{decode, Kv};
use super::{keys, Store, StoreError, Transaction, Txn};

/// Still awaiting something: a certified recipient with neither consegna, nor failure,
/// nor the final 24-hour notice.
fn is_open(t: &Transaction) -> bool {
    t.recipients.iter().any(|r| {
        r.certified && r.consegna.is_none() && r.failed.is_none() && r.notice_24h.is_none()
    })
}

impl Txn<'_> {
    /// Creates or replaces the transaction, keeping the open set in step.
    pub fn put_transaction(&mut self, transaction: &Transaction) -> Result<(), StoreError> {
        let id = &transaction.identificativo;
        self.put_json(keys::transaction(id), transaction)?;
        if is_open(transaction) {
            self.put(keys::open(id), Vec::new())
        } else {
            self.del(keys::open(id)).map(drop)
        }
    }

    pub fn transaction(&mut self, identificativo: &str) -> Result<Option<Transaction>, StoreError> {
        self.get_json(&keys::transaction(identificativo))
    }

    pub fn remove_transaction(&mut self, identificativo: &str) -> Result<bool, StoreError> {
        self.del(keys::open(identificativo))?;
        Ok(self.del(keys::transaction(identificativo))?.is_some())
    }
}

impl Store {
    /// Creates or replaces the transaction.
    pub fn put_transaction(&self, transaction: &Transaction) -> Result<(), StoreError> {
        self.atomically(|t| t.put_transaction(transaction))
    }

    pub fn transaction(&self, identificativo: &str) -> Result<Option<Transaction>, StoreError> {
        self.direct().get_json(&keys::transaction(identificativo))
    }

    /// Transactions still awaiting receipts (see [`Transaction`]), by identificativo.
    pub fn open_transactions(&self) -> Result<Vec<Transaction>, StoreError> {
        let prefix = keys::open_all();
        let mut open = Vec::new();
        for item in self.scan(&prefix) {
            let (key, _) = item?;
            let record_key = keys::transaction_raw(&key[prefix.len()..]);
            // Read after the scan step: a transaction closed meanwhile is skipped.
            if let Some(bytes) = self.direct().get(&record_key)? {
                let t: Transaction = decode(&record_key, &bytes)?;
                if is_open(&t) {
                    open.push(t);
                }
            }
        }
        Ok(open)
    }

    pub fn remove_transaction(&self, identificativo: &str) -> Result<bool, StoreError> {
        self.atomically(|t| t.remove_transaction(identificativo))
    }
}
