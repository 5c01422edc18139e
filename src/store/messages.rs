//! Messages in folders: metadata and body under separate keys, so that listing a
//! folder never reads bodies.

use super::folders::require_folder;
use super::kv::{corrupt, decode, Kv};
use super::mailboxes::require_mailbox;
use super::{keys, Body, FolderState, MessageMeta, Store, StoreError, Txn};

/// What to store as a message's body: its bytes, or the stored value of another
/// message (a copy shares the file of a large body).
enum Stored<'a> {
    Bytes(&'a [u8]),
    Value(&'a [u8]),
}

impl Txn<'_> {
    /// Stores a message in a folder and returns its uid.
    pub fn append(
        &mut self,
        address: &str,
        folder: &str,
        raw: &[u8],
        flags: &[String],
        internal_date: i64,
    ) -> Result<u32, StoreError> {
        let addr = keys::address(address)?;
        let name = keys::folder_name(folder)?;
        let mailbox = require_mailbox(self, &addr)?;
        let state = require_folder(self, &addr, &name)?;
        let meta = MessageMeta {
            uid: 0,
            flags: flags.to_vec(),
            internal_date,
            size: raw.len() as u64,
        };
        self.charge(&addr, mailbox.quota, meta.size)?;
        self.insert_message(&addr, &name, state, meta, Stored::Bytes(raw))
    }

    /// Copies a message to another (or the same) folder; None if there is no such uid.
    pub fn copy(
        &mut self,
        address: &str,
        from_folder: &str,
        uid: u32,
        to_folder: &str,
    ) -> Result<Option<u32>, StoreError> {
        let addr = keys::address(address)?;
        let from = keys::folder_name(from_folder)?;
        let to = keys::folder_name(to_folder)?;
        let mailbox = require_mailbox(self, &addr)?;
        let source = require_folder(self, &addr, &from)?;
        let meta_key = keys::meta(&addr, source.uidvalidity, uid);
        let Some(meta) = self.get_json::<MessageMeta>(&meta_key)? else {
            return Ok(None);
        };
        let body_key = keys::body(&addr, source.uidvalidity, uid);
        let body = self
            .get(&body_key)?
            .ok_or_else(|| corrupt(&body_key, "message without body"))?;
        let target = require_folder(self, &addr, &to)?;
        let size = super::blobs::stored_size(&body);
        self.charge(&addr, mailbox.quota, size)?;
        let meta = MessageMeta { size, ..meta };
        self.insert_message(&addr, &to, target, meta, Stored::Value(&body))
            .map(Some)
    }

    fn insert_message(
        &mut self,
        addr: &str,
        folder: &str,
        mut state: FolderState,
        mut meta: MessageMeta,
        body: Stored<'_>,
    ) -> Result<u32, StoreError> {
        let uid = state.uidnext;
        state.uidnext = uid
            .checked_add(1)
            .ok_or(StoreError::Exhausted("folder uids"))?;
        self.put_json(keys::folder(addr, folder), &state)?;
        meta.uid = uid;
        self.put_json(keys::meta(addr, state.uidvalidity, uid), &meta)?;
        let key = keys::body(addr, state.uidvalidity, uid);
        match body {
            Stored::Bytes(raw) => self.put_body(key, raw)?,
            Stored::Value(value) => self.put_body_value(key, value)?,
        }
        Ok(uid)
    }

    pub fn fetch(
        &mut self,
        address: &str,
        folder: &str,
        uid: u32,
    ) -> Result<Option<Body>, StoreError> {
        let addr = keys::address(address)?;
        let name = keys::folder_name(folder)?;
        let state = require_folder(self, &addr, &name)?;
        self.get_body(&keys::body(&addr, state.uidvalidity, uid))
    }

    /// Replaces the flags of a message; false if there is no such uid.
    pub fn set_flags(
        &mut self,
        address: &str,
        folder: &str,
        uid: u32,
        flags: &[String],
    ) -> Result<bool, StoreError> {
        let addr = keys::address(address)?;
        let name = keys::folder_name(folder)?;
        let state = require_folder(self, &addr, &name)?;
        let key = keys::meta(&addr, state.uidvalidity, uid);
        let Some(mut meta) = self.get_json::<MessageMeta>(&key)? else {
            return Ok(false);
        };
        meta.flags = flags.to_vec();
        self.put_json(key, &meta)?;
        Ok(true)
    }

    /// Deletes a message (metadata and body); false if there is no such uid. Does not
    /// decode the record, so corrupt messages can be removed too.
    pub fn remove(&mut self, address: &str, folder: &str, uid: u32) -> Result<bool, StoreError> {
        let addr = keys::address(address)?;
        let name = keys::folder_name(folder)?;
        let state = require_folder(self, &addr, &name)?;
        let existed = self
            .del(keys::meta(&addr, state.uidvalidity, uid))?
            .is_some();
        let body = self.del_body(keys::body(&addr, state.uidvalidity, uid))?;
        if let Some(size) = body {
            self.refund(&addr, size)?;
        }
        Ok(existed || body.is_some())
    }
}

impl Store {
    /// Stores a message in a folder and returns its uid.
    pub fn append(
        &self,
        address: &str,
        folder: &str,
        raw: &[u8],
        flags: &[String],
        internal_date: i64,
    ) -> Result<u32, StoreError> {
        self.atomically(|t| t.append(address, folder, raw, flags, internal_date))
    }

    /// The folder's messages in uid order.
    pub fn list(&self, address: &str, folder: &str) -> Result<Vec<MessageMeta>, StoreError> {
        let addr = keys::address(address)?;
        let name = keys::folder_name(folder)?;
        let state = require_folder(&mut self.direct(), &addr, &name)?;
        let prefix = keys::metas(&addr, state.uidvalidity);
        self.scan(&prefix)
            .map(|item| {
                let (key, value) = item?;
                let meta: MessageMeta = decode(&key, &value)?;
                if keys::trailing_u32(&key, &prefix) != Some(meta.uid) {
                    return Err(corrupt(&key, "uid differs from the key's"));
                }
                Ok(meta)
            })
            .collect()
    }

    pub fn fetch(&self, address: &str, folder: &str, uid: u32) -> Result<Option<Body>, StoreError> {
        let addr = keys::address(address)?;
        let name = keys::folder_name(folder)?;
        let mut kv = self.direct();
        let state = require_folder(&mut kv, &addr, &name)?;
        match kv.get(&keys::body(&addr, state.uidvalidity, uid))? {
            Some(value) => self.read_body(value).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces the flags of a message; false if there is no such uid.
    pub fn set_flags(
        &self,
        address: &str,
        folder: &str,
        uid: u32,
        flags: &[String],
    ) -> Result<bool, StoreError> {
        self.atomically(|t| t.set_flags(address, folder, uid, flags))
    }

    /// Deletes a message (metadata and body); false if there is no such uid.
    pub fn remove(&self, address: &str, folder: &str, uid: u32) -> Result<bool, StoreError> {
        self.atomically(|t| t.remove(address, folder, uid))
    }

    /// Copies a message to another folder: its uid there, or None if there is no `uid`.
    pub fn copy(
        &self,
        address: &str,
        from_folder: &str,
        uid: u32,
        to_folder: &str,
    ) -> Result<Option<u32>, StoreError> {
        self.atomically(|t| t.copy(address, from_folder, uid, to_folder))
    }
}
