//! Change notifications: who else changed a folder (IMAP IDLE, concurrent sessions).
//!
//! Built on sled's own prefix subscription over every message record, so that changes
//! made inside [`Store::atomically`] (deliveries, receipts) are seen exactly when they
//! commit, without the write paths knowing about it. sled hands events through a bounded
//! channel and blocks writers when it is full, so one thread per store drains it at
//! once into a tokio broadcast channel, where a slow reader only loses events (and is
//! told so with `Lagged`) instead of stalling writers.

use std::sync::OnceLock;

use tokio::sync::broadcast;

use super::{keys, Store};

/// Events kept for slow readers before they lag.
const CAPACITY: usize = 4096;

/// A committed change to one message of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEvent {
    /// Lower-case mailbox address.
    pub address: String,
    /// The folder, by its UIDVALIDITY (unique in the database, see `keys`).
    pub uidvalidity: u32,
    pub uid: u32,
    pub change: MessageChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageChange {
    /// Appended, copied in, or its flags replaced.
    Stored,
    /// Removed (expunged, moved away, folder deleted).
    Removed,
}

#[derive(Default)]
pub(super) struct Hub {
    sender: OnceLock<broadcast::Sender<StoreEvent>>,
}

impl Store {
    /// Every message change committed from now on, in commit order.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events
            .sender
            .get_or_init(|| start(&self.db))
            .subscribe()
    }
}

fn start(db: &sled::Db) -> broadcast::Sender<StoreEvent> {
    let (tx, _) = broadcast::channel(CAPACITY);
    // The prefix shared by all message records: kind and separator.
    let mut prefix = keys::mailbox_metas("-");
    prefix.truncate(2);
    let subscriber = db.watch_prefix(prefix);
    let sender = tx.clone();
    let spawned = std::thread::Builder::new()
        .name("store-events".into())
        .spawn(move || {
            // Ends when the database is dropped (sled closes the channel).
            for event in subscriber {
                let (key, change) = match &event {
                    sled::Event::Insert { key, .. } => (key, MessageChange::Stored),
                    sled::Event::Remove { key } => (key, MessageChange::Removed),
                };
                if let Some(event) = decode(key, change) {
                    // Err: nobody listens right now, which is fine.
                    let _ = sender.send(event);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("store events: cannot start the thread: {e}");
    }
    tx
}

/// `M 0 addr 0 uidvalidity32 uid32` → the event.
fn decode(key: &[u8], change: MessageChange) -> Option<StoreEvent> {
    let rest = key.get(2..)?;
    let sep = rest.iter().position(|b| *b == 0)?;
    let address = std::str::from_utf8(&rest[..sep]).ok()?.to_owned();
    let ids: &[u8; 8] = rest.get(sep + 1..)?.try_into().ok()?;
    Some(StoreEvent {
        address,
        uidvalidity: u32::from_be_bytes([ids[0], ids[1], ids[2], ids[3]]),
        uid: u32::from_be_bytes([ids[4], ids[5], ids[6], ids[7]]),
        change,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_events_decode_message_keys() {
        let key = keys::meta("a@x", 7, 9);
        assert_eq!(
            decode(&key, MessageChange::Removed),
            Some(StoreEvent {
                address: "a@x".into(),
                uidvalidity: 7,
                uid: 9,
                change: MessageChange::Removed
            })
        );
        assert_eq!(decode(&keys::metas("a@x", 7), MessageChange::Stored), None);
    }
}
