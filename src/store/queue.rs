//! The outbound queue: entries (state, small) and message bytes under separate keys.

use super::kv::Kv;
use super::{keys, Body, QueueEntry, Store, StoreError, Txn};

impl Txn<'_> {
    /// Queues `message` for `entry`'s recipients under a new id (`entry.id` is ignored).
    pub fn enqueue(&mut self, entry: &QueueEntry, message: &[u8]) -> Result<u64, StoreError> {
        let id = self.next_id()?;
        self.put_json(
            keys::queue(id),
            &QueueEntry {
                id,
                ..entry.clone()
            },
        )?;
        self.put_body(keys::queued_message(id), message)?;
        Ok(id)
    }

    pub fn queue_entry(&mut self, id: u64) -> Result<Option<QueueEntry>, StoreError> {
        self.get_json(&keys::queue(id))
    }

    /// Replaces an existing entry (attempts, recipients' state…); NoQueueEntry if gone.
    pub fn update_queue(&mut self, entry: &QueueEntry) -> Result<(), StoreError> {
        let key = keys::queue(entry.id);
        if self.get(&key)?.is_none() {
            return Err(StoreError::NoQueueEntry(entry.id));
        }
        self.put_json(key, entry)
    }

    /// Removes the entry and its message; false if there was none.
    pub fn dequeue(&mut self, id: u64) -> Result<bool, StoreError> {
        let existed = self.del(keys::queue(id))?.is_some();
        self.del_body(keys::queued_message(id))?;
        Ok(existed)
    }
}

impl Store {
    /// Queues `message` for `entry`'s recipients under a new id (`entry.id` is ignored).
    pub fn enqueue(&self, entry: &QueueEntry, message: &[u8]) -> Result<u64, StoreError> {
        self.atomically(|t| t.enqueue(entry, message))
    }

    /// All entries in id (creation) order.
    pub fn queue(&self) -> Result<Vec<QueueEntry>, StoreError> {
        Ok(self
            .scan_json(&keys::queue_all())?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }

    pub fn queue_entry(&self, id: u64) -> Result<Option<QueueEntry>, StoreError> {
        self.direct().get_json(&keys::queue(id))
    }

    pub fn queue_message(&self, id: u64) -> Result<Option<Body>, StoreError> {
        match self.direct().get(&keys::queued_message(id))? {
            Some(value) => self.read_body(value).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces an existing entry; NoQueueEntry if gone.
    pub fn update_queue(&self, entry: &QueueEntry) -> Result<(), StoreError> {
        self.atomically(|t| t.update_queue(entry))
    }

    /// Removes the entry and its message; false if there was none.
    pub fn dequeue(&self, id: u64) -> Result<bool, StoreError> {
        self.atomically(|t| t.dequeue(id))
    }
}
