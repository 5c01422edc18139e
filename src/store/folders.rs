//! Folders of a mailbox and their IMAP identity (UIDVALIDITY, UIDNEXT).

use super::kv::{corrupt, decode, Kv};
use super::mailboxes::{read_mailbox, require_mailbox};
use super::{keys, FolderState, Store, StoreError, Txn, INBOX};

const UIDVALIDITY: &str = "uidvalidity";

/// The folder's state, or NoMailbox / NoFolder. `addr` and `name` are normalized.
pub(super) fn require_folder(
    kv: &mut impl Kv,
    addr: &str,
    name: &str,
) -> Result<FolderState, StoreError> {
    if let Some(state) = kv.get_json(&keys::folder(addr, name))? {
        return Ok(state);
    }
    require_mailbox(kv, addr)?;
    Err(StoreError::NoFolder {
        address: addr.to_owned(),
        folder: name.to_owned(),
    })
}

fn now_u32() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

impl Txn<'_> {
    /// A UIDVALIDITY never given before in this database. Seeded by the clock so that a
    /// database rebuilt from scratch does not repeat values clients may have cached.
    fn new_uidvalidity(&mut self) -> Result<u32, StoreError> {
        self.bump_u32_at_least(UIDVALIDITY, now_u32())
    }

    pub fn create_folder(&mut self, address: &str, name: &str) -> Result<FolderState, StoreError> {
        let addr = keys::address(address)?;
        let name = keys::folder_name(name)?;
        require_mailbox(self, &addr)?;
        let key = keys::folder(&addr, &name);
        if self.get(&key)?.is_some() {
            return Err(StoreError::FolderExists(name));
        }
        let state = FolderState {
            uidvalidity: self.new_uidvalidity()?,
            uidnext: 1,
        };
        self.put_json(key, &state)?;
        self.touch(&addr)?;
        Ok(state)
    }

    pub fn folder_state(
        &mut self,
        address: &str,
        name: &str,
    ) -> Result<Option<FolderState>, StoreError> {
        let addr = keys::address(address)?;
        let name = keys::folder_name(name)?;
        self.get_json(&keys::folder(&addr, &name))
    }

    /// Renames a folder keeping its uids and UIDVALIDITY. Renaming INBOX moves its
    /// messages to `to` and leaves an empty INBOX with a new UIDVALIDITY (RFC 3501).
    pub fn rename_folder(&mut self, address: &str, from: &str, to: &str) -> Result<(), StoreError> {
        let addr = keys::address(address)?;
        let from = keys::folder_name(from)?;
        let to = keys::folder_name(to)?;
        let state = require_folder(self, &addr, &from)?;
        let to_key = keys::folder(&addr, &to);
        if self.get(&to_key)?.is_some() {
            return Err(StoreError::FolderExists(to));
        }
        self.put_json(to_key, &state)?;
        let from_key = keys::folder(&addr, &from);
        if from == INBOX {
            let fresh = FolderState {
                uidvalidity: self.new_uidvalidity()?,
                uidnext: state.uidnext,
            };
            self.put_json(from_key, &fresh)?;
        } else {
            self.del(from_key)?;
        }
        self.touch(&addr)
    }
}

impl Store {
    /// The mailbox's folders with their state, sorted by name (bytewise).
    pub fn folders(&self, address: &str) -> Result<Vec<(String, FolderState)>, StoreError> {
        let addr = keys::address(address)?;
        require_mailbox(&mut self.direct(), &addr)?;
        let prefix = keys::folders(&addr);
        self.scan(&prefix)
            .map(|item| {
                let (key, value) = item?;
                let name = std::str::from_utf8(&key[prefix.len()..])
                    .map_err(|_| corrupt(&key, "folder name is not UTF-8"))?;
                Ok((name.to_owned(), decode(&key, &value)?))
            })
            .collect()
    }

    /// Creates an empty folder with a new UIDVALIDITY; FolderExists if present.
    pub fn create_folder(&self, address: &str, name: &str) -> Result<FolderState, StoreError> {
        self.atomically(|t| t.create_folder(address, name))
    }

    /// Deletes the folder and its messages; false if there is no such folder.
    pub fn delete_folder(&self, address: &str, name: &str) -> Result<bool, StoreError> {
        let addr = keys::address(address)?;
        let name = keys::folder_name(name)?;
        if name == INBOX {
            return Err(StoreError::InboxUndeletable);
        }
        let key = keys::folder(&addr, &name);
        self.retrying(|| {
            let Some(seen) = self.direct().get(&key)? else {
                return match read_mailbox(&mut self.direct(), &addr)? {
                    Some(_) => Ok(Some(false)),
                    None => Err(StoreError::NoMailbox(addr.clone())),
                };
            };
            let state: FolderState = decode(&key, &seen)?;
            let mut metas = Vec::new();
            for item in self.scan(&keys::metas(&addr, state.uidvalidity)) {
                metas.push(item?.0.to_vec());
            }
            self.atomically(|t| {
                // Appends and copies into the folder change its record (uidnext).
                if t.get(&key)?.as_ref() != Some(&seen) {
                    return Ok(None);
                }
                t.del(key.clone())?;
                let mut freed = 0;
                for meta in &metas {
                    t.del(meta.clone())?;
                    if let Some(size) = t.del_body(keys::body_of_meta(meta))? {
                        freed += size;
                    }
                }
                t.refund(&addr, freed)?;
                Ok(Some(true))
            })
        })
    }

    /// Renames a folder keeping its uids (see [`Txn::rename_folder`]).
    pub fn rename_folder(&self, address: &str, from: &str, to: &str) -> Result<(), StoreError> {
        self.atomically(|t| t.rename_folder(address, from, to))
    }

    pub fn folder_state(
        &self,
        address: &str,
        name: &str,
    ) -> Result<Option<FolderState>, StoreError> {
        let addr = keys::address(address)?;
        let name = keys::folder_name(name)?;
        self.direct().get_json(&keys::folder(&addr, &name))
    }
}
