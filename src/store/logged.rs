//! Transactions that also write to other trees of the same database (the registro dei
//! log's): the store's changes and the log records of the same step commit together.

use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};

use super::{Store, StoreError, Txn};

impl Store {
    /// Like [`Store::atomically`], with `extra` trees joined to the transaction.
    pub fn atomically_with<T>(
        &self,
        extra: &[sled::Tree],
        f: impl Fn(&mut Txn<'_>, &[TransactionalTree]) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut trees: Vec<sled::Tree> = Vec::with_capacity(extra.len() + 1);
        trees.push((*self.db).clone());
        trees.extend(extra.iter().cloned());
        let result = trees[..].transaction(|views| {
            let (main, others) = views
                .split_first()
                .ok_or(ConflictableTransactionError::Abort(StoreError::Backend(
                    "no tree".into(),
                )))?;
            let mut txn = Txn {
                tree: main,
                blobs: &self.blobs,
                failure: None,
            };
            let out = f(&mut txn, others);
            if let Some(failure) = txn.failure.take() {
                return Err(ConflictableTransactionError::from(failure));
            }
            out.map_err(ConflictableTransactionError::Abort)
        });
        result.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Backend(e.to_string()),
        })
    }
}

impl Txn<'_> {
    /// Hands a sled failure met on another tree of the transaction to the store, so a
    /// conflict is retried like one on the store's own tree.
    pub fn absorb(&mut self, e: sled::transaction::UnabortableTransactionError) -> StoreError {
        let text = e.to_string();
        self.failure = Some(e);
        StoreError::Backend(text)
    }
}
