//! Mailboxes (accounts) and their per-mailbox counters.

use serde::{Deserialize, Serialize};

use super::kv::{corrupt, Kv};
use super::{keys, Mailbox, Store, StoreError, Txn, INBOX, SENT};

/// Kept apart from [`Mailbox`] so that appends do not rewrite the account record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Counters {
    /// Sum of the sizes of all messages of the mailbox.
    pub usage: u64,
    /// Changes (from a database-wide counter, so never repeated) whenever keys are added
    /// under the mailbox: lets `remove_mailbox` detect that its scan went stale.
    pub generation: u64,
}

const GENERATION: &str = "generation";

pub(super) fn read_mailbox(kv: &mut impl Kv, addr: &str) -> Result<Option<Mailbox>, StoreError> {
    kv.get_json(&keys::account(addr))
}

/// The mailbox, or NoMailbox.
pub(super) fn require_mailbox(kv: &mut impl Kv, addr: &str) -> Result<Mailbox, StoreError> {
    read_mailbox(kv, addr)?.ok_or_else(|| StoreError::NoMailbox(addr.to_owned()))
}

fn read_counters(kv: &mut impl Kv, addr: &str) -> Result<Counters, StoreError> {
    let key = keys::counters(addr);
    kv.get_json(&key)?
        .ok_or_else(|| corrupt(&key, "mailbox without counters"))
}

impl Txn<'_> {
    /// Creates the mailbox with folders INBOX and Sent.
    pub fn add_mailbox(&mut self, mailbox: &Mailbox) -> Result<(), StoreError> {
        let addr = keys::address(&mailbox.address)?;
        if self.get(&keys::account(&addr))?.is_some() {
            return Err(StoreError::MailboxExists(addr));
        }
        self.insert_mailbox(addr, mailbox)
    }

    pub fn mailbox(&mut self, address: &str) -> Result<Option<Mailbox>, StoreError> {
        read_mailbox(self, &keys::address(address)?)
    }

    /// Creates or replaces the account record (password, quota, policy…).
    pub fn put_mailbox(&mut self, mailbox: &Mailbox) -> Result<(), StoreError> {
        let addr = keys::address(&mailbox.address)?;
        let key = keys::account(&addr);
        if self.get(&key)?.is_none() {
            return self.insert_mailbox(addr, mailbox);
        }
        self.put_json(
            key,
            &Mailbox {
                address: addr,
                ..mailbox.clone()
            },
        )
    }

    fn insert_mailbox(&mut self, addr: String, mailbox: &Mailbox) -> Result<(), StoreError> {
        let generation = self.bump_u64(GENERATION)?;
        self.put_json(
            keys::counters(&addr),
            &Counters {
                usage: 0,
                generation,
            },
        )?;
        self.put_json(
            keys::account(&addr),
            &Mailbox {
                address: addr.clone(),
                ..mailbox.clone()
            },
        )?;
        self.create_folder(&addr, INBOX)?;
        self.create_folder(&addr, SENT)?;
        Ok(())
    }

    /// Records that keys were added under the mailbox (see [`Counters::generation`]).
    pub(super) fn touch(&mut self, addr: &str) -> Result<(), StoreError> {
        self.update_counters(addr, |_| Ok(()))
    }

    /// Adds `size` to the usage, or fails with OverQuota.
    pub(super) fn charge(
        &mut self,
        addr: &str,
        quota: Option<u64>,
        size: u64,
    ) -> Result<(), StoreError> {
        self.update_counters(addr, |c| {
            let after = c.usage.saturating_add(size);
            match quota {
                Some(quota) if after > quota => Err(StoreError::OverQuota {
                    address: addr.to_owned(),
                    used: c.usage,
                    quota,
                }),
                _ => {
                    c.usage = after;
                    Ok(())
                }
            }
        })
    }

    pub(super) fn refund(&mut self, addr: &str, size: u64) -> Result<(), StoreError> {
        self.update_counters(addr, |c| {
            c.usage = c.usage.saturating_sub(size);
            Ok(())
        })
    }

    fn update_counters(
        &mut self,
        addr: &str,
        change: impl FnOnce(&mut Counters) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut counters = read_counters(self, addr)?;
        change(&mut counters)?;
        counters.generation = self.bump_u64(GENERATION)?;
        self.put_json(keys::counters(addr), &counters)
    }
}

impl Store {
    /// Creates the mailbox with folders INBOX and Sent; MailboxExists if present.
    pub fn add_mailbox(&self, mailbox: &Mailbox) -> Result<(), StoreError> {
        self.atomically(|t| t.add_mailbox(mailbox))
    }

    pub fn mailbox(&self, address: &str) -> Result<Option<Mailbox>, StoreError> {
        read_mailbox(&mut self.direct(), &keys::address(address)?)
    }

    /// All mailboxes, sorted by address.
    pub fn mailboxes(&self) -> Result<Vec<Mailbox>, StoreError> {
        Ok(self
            .scan_json(&keys::accounts())?
            .into_iter()
            .map(|(_, m)| m)
            .collect())
    }

    /// Creates or replaces the account record (password, quota, policy…).
    pub fn put_mailbox(&self, mailbox: &Mailbox) -> Result<(), StoreError> {
        self.atomically(|t| t.put_mailbox(mailbox))
    }

    /// Removes the account and its folders and messages. Works on corrupt records too.
    pub fn remove_mailbox(&self, address: &str) -> Result<bool, StoreError> {
        let addr = keys::address(address)?;
        let account = keys::account(&addr);
        let counters = keys::counters(&addr);
        self.retrying(|| {
            // Raw bytes, not decoded: a corrupt account must still be removable.
            let seen = self.direct().get(&counters)?;
            let mut doomed = Vec::new();
            let mut bodies = Vec::new();
            for item in self.scan(&keys::folders(&addr)) {
                doomed.push(item?.0.to_vec());
            }
            for item in self.scan(&keys::mailbox_metas(&addr)) {
                let meta = item?.0;
                bodies.push(keys::body_of_meta(&meta));
                doomed.push(meta.to_vec());
            }
            self.atomically(|t| {
                if t.get(&counters)? != seen {
                    return Ok(None);
                }
                let existed = t.del(account.clone())?.is_some();
                t.del(counters.clone())?;
                for key in &doomed {
                    t.del(key.clone())?;
                }
                for key in &bodies {
                    t.del_body(key.clone())?;
                }
                Ok(Some(existed || seen.is_some()))
            })
        })
    }

    /// Bytes used by all messages of the mailbox.
    pub fn usage(&self, address: &str) -> Result<u64, StoreError> {
        let addr = keys::address(address)?;
        let mut kv = self.direct();
        require_mailbox(&mut kv, &addr)?;
        Ok(read_counters(&mut kv, &addr)?.usage)
    }
}
