//! Key layout of the single tree, and the normalization of names that go into keys.
//!
//! Every key is `kind, 0x00, components…`. Variable-length components (addresses, folder
//! names) are followed by 0x00, which they may not contain, so that one mailbox's prefix
//! is never a prefix of another's. Integers are big-endian so keys sort numerically.
//!
//! | kind | rest                           | value                            |
//! |------|--------------------------------|----------------------------------|
//! | `A`  | addr                           | `Mailbox` (JSON)                 |
//! | `U`  | addr                           | usage and generation (JSON)      |
//! | `F`  | addr 0 folder                  | `FolderState` (JSON)             |
//! | `M`  | addr 0 uidvalidity32 uid32     | `MessageMeta` (JSON)             |
//! | `B`  | addr 0 uidvalidity32 uid32     | raw message                      |
//! | `Q`  | id64                           | `QueueEntry` (JSON)              |
//! | `q`  | id64                           | raw message                      |
//! | `P`  | provider name                  | `ProviderEntry` (JSON)           |
//! | `D`  | domain                         | provider name                    |
//! | `H`  | certificate hash               | provider name                    |
//! | `T`  | identificativo                 | `Transaction` (JSON)             |
//! | `O`  | identificativo                 | empty: the transaction is open   |
//! | `K`  | claim key                      | unix seconds of the claim (i64)  |
//! | `S`  | counter name                   | counter (u32 or u64)             |
//! | `R`  | blob name 0 key of the body    | empty: that body is in the file  |
//!
//! Messages are keyed by their folder's uidvalidity rather than its name: uidvalidity
//! values are unique in the database, so renaming a folder moves one record, and
//! messages of a deleted folder can never show up in a re-created one.

use super::{StoreError, INBOX};

const SEP: u8 = 0;

const ACCOUNT: u8 = b'A';
const COUNTERS: u8 = b'U';
const FOLDER: u8 = b'F';
const META: u8 = b'M';
const BODY: u8 = b'B';
const QUEUE: u8 = b'Q';
const QUEUED_MESSAGE: u8 = b'q';
const PROVIDER: u8 = b'P';
const DOMAIN: u8 = b'D';
const HASH: u8 = b'H';
const TRANSACTION: u8 = b'T';
const OPEN: u8 = b'O';
const CLAIM: u8 = b'K';
const SYSTEM: u8 = b'S';
const BLOB_REF: u8 = b'R';

fn key(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(kind);
    k.push(SEP);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// Prefix of all records of one kind.
fn all(kind: u8) -> Vec<u8> {
    vec![kind, SEP]
}

pub(super) fn account(addr: &str) -> Vec<u8> {
    key(ACCOUNT, &[addr.as_bytes()])
}
pub(super) fn accounts() -> Vec<u8> {
    all(ACCOUNT)
}
pub(super) fn counters(addr: &str) -> Vec<u8> {
    key(COUNTERS, &[addr.as_bytes()])
}

pub(super) fn folder(addr: &str, name: &str) -> Vec<u8> {
    key(FOLDER, &[addr.as_bytes(), &[SEP], name.as_bytes()])
}
/// Prefix of a mailbox's folders.
pub(super) fn folders(addr: &str) -> Vec<u8> {
    key(FOLDER, &[addr.as_bytes(), &[SEP]])
}

pub(super) fn meta(addr: &str, folder_id: u32, uid: u32) -> Vec<u8> {
    key(
        META,
        &[
            addr.as_bytes(),
            &[SEP],
            &folder_id.to_be_bytes(),
            &uid.to_be_bytes(),
        ],
    )
}
/// Prefix of one folder's message metadata.
pub(super) fn metas(addr: &str, folder_id: u32) -> Vec<u8> {
    key(META, &[addr.as_bytes(), &[SEP], &folder_id.to_be_bytes()])
}
/// Prefix of all message metadata of a mailbox.
pub(super) fn mailbox_metas(addr: &str) -> Vec<u8> {
    key(META, &[addr.as_bytes(), &[SEP]])
}
pub(super) fn body(addr: &str, folder_id: u32, uid: u32) -> Vec<u8> {
    let mut k = meta(addr, folder_id, uid);
    k[0] = BODY;
    k
}
/// The body key matching a metadata key (same components).
pub(super) fn body_of_meta(meta_key: &[u8]) -> Vec<u8> {
    let mut k = meta_key.to_vec();
    if let Some(kind) = k.first_mut() {
        *kind = BODY;
    }
    k
}

pub(super) fn queue(id: u64) -> Vec<u8> {
    key(QUEUE, &[&id.to_be_bytes()])
}
/// A body record (`B` or `q` key) that refers to the blob file `name`.
pub(super) fn blob_ref(name: &str, body_key: &[u8]) -> Vec<u8> {
    key(BLOB_REF, &[name.as_bytes(), &[SEP], body_key])
}

/// Prefix of every reference to the blob file `name`.
pub(super) fn blob_refs(name: &str) -> Vec<u8> {
    key(BLOB_REF, &[name.as_bytes(), &[SEP]])
}

pub(super) fn queue_all() -> Vec<u8> {
    all(QUEUE)
}
pub(super) fn queued_message(id: u64) -> Vec<u8> {
    key(QUEUED_MESSAGE, &[&id.to_be_bytes()])
}

pub(super) fn provider(name: &str) -> Vec<u8> {
    key(PROVIDER, &[name.as_bytes()])
}
pub(super) fn providers() -> Vec<u8> {
    all(PROVIDER)
}
/// `domain` must already be normalized ([`domain_name`]).
pub(super) fn domain(domain: &str) -> Vec<u8> {
    key(DOMAIN, &[domain.as_bytes()])
}
/// `hash` must already be lower case.
pub(super) fn certificate_hash(hash: &str) -> Vec<u8> {
    key(HASH, &[hash.as_bytes()])
}

pub(super) fn transaction(id: &str) -> Vec<u8> {
    key(TRANSACTION, &[id.as_bytes()])
}
/// A transaction key from the identificativo bytes found in an open-set key.
pub(super) fn transaction_raw(id: &[u8]) -> Vec<u8> {
    key(TRANSACTION, &[id])
}
pub(super) fn open(id: &str) -> Vec<u8> {
    key(OPEN, &[id.as_bytes()])
}
pub(super) fn open_all() -> Vec<u8> {
    all(OPEN)
}

pub(super) fn claim(claim: &str) -> Vec<u8> {
    key(CLAIM, &[claim.as_bytes()])
}

pub(super) fn counter(name: &str) -> Vec<u8> {
    key(SYSTEM, &[name.as_bytes()])
}

/// The big-endian u32 that ends `key` right after `prefix`.
pub(super) fn trailing_u32(key: &[u8], prefix: &[u8]) -> Option<u32> {
    let rest = key.strip_prefix(prefix)?;
    Some(u32::from_be_bytes(rest.try_into().ok()?))
}

/// A key readable in error messages: separators as `/`, other bytes escaped.
pub(super) fn display(key: &[u8]) -> String {
    let mut out = String::new();
    for chunk in key.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\0' => out.push('/'),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn checked(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.contains('\0') {
        return Err(StoreError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// A mailbox address as stored: lower case.
pub(super) fn address(address: &str) -> Result<String, StoreError> {
    checked(address)?;
    Ok(address.to_lowercase())
}

/// A folder name as stored: INBOX in any case is INBOX, other names are kept.
pub(super) fn folder_name(name: &str) -> Result<String, StoreError> {
    checked(name)?;
    if name.eq_ignore_ascii_case(INBOX) {
        Ok(INBOX.to_owned())
    } else {
        Ok(name.to_owned())
    }
}

/// A domain as indexed: lower case, without the root's trailing dot.
pub(super) fn domain_name(domain: &str) -> String {
    domain.trim_end_matches('.').to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_sort_numerically() {
        assert!(meta("a@x", 7, 2) < meta("a@x", 7, 10));
        assert!(meta("a@x", 7, 255) < meta("a@x", 7, 256));
        assert!(queue(255) < queue(256));
        assert!(meta("a@x", 7, u32::MAX) < meta("a@x", 8, 0));
    }

    #[test]
    fn store_mailbox_prefixes_do_not_overlap() {
        assert!(!meta("a@x.it", 1, 1).starts_with(&mailbox_metas("a@x")));
        assert!(!folder("a@x.it", "INBOX").starts_with(&folders("a@x")));
        assert!(meta("a@x", 1, 1).starts_with(&metas("a@x", 1)));
        assert!(!meta("a@x", 1, 1).starts_with(&metas("a@x", 2)));
        assert_eq!(body_of_meta(&meta("a@x", 3, 4)), body("a@x", 3, 4));
    }

    #[test]
    fn store_names_are_normalized_and_checked() {
        assert_eq!(address("Alice@PEC.Example").unwrap(), "alice@pec.example");
        assert_eq!(folder_name("inBox").unwrap(), "INBOX");
        assert_eq!(folder_name("Archive").unwrap(), "Archive");
        assert!(matches!(address(""), Err(StoreError::InvalidName(_))));
        assert!(matches!(
            folder_name("a\0b"),
            Err(StoreError::InvalidName(_))
        ));
        assert_eq!(domain_name("PEC.Example."), "pec.example");
    }

    #[test]
    fn store_trailing_u32_and_display() {
        let prefix = metas("a@x", 9);
        assert_eq!(trailing_u32(&meta("a@x", 9, 42), &prefix), Some(42));
        assert_eq!(trailing_u32(&prefix, &prefix), None);
        assert_eq!(display(&account("a@x")), "A/a@x");
        assert_eq!(display(&[b'Q', 0, 0xff, 1]), "Q/\\xff\\x01");
    }
}
