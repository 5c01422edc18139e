//! Large message bodies as files beside the database (`store/blobs/`), read through
//! mmap: sled never holds a 30 MB value in its cache or log, reading a message costs
//! page cache rather than heap, and a body stored twice (a busta for two domains, the
//! same message in two folders) is one file.
//!
//! A file is named by the SHA-256 of its bytes and written durably (temporary name,
//! fsync, rename, fsync of the folder) before the transaction that refers to it
//! commits: writing it is idempotent, so a transaction retried by sled writes nothing
//! new. Each reference is a `R` record beside the value; files no record names are
//! removed by [`Store::sweep_blobs`] once old enough that no transaction can still be
//! about to refer to them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use sled::IVec;

use super::kv::backend;
use super::{keys, Store, StoreError, Txn};

/// Bodies up to this size stay inside the database.
pub const INLINE_MAX: usize = 128 * 1024;
/// What a value holding a reference starts with; a message never starts with NUL.
const MAGIC: &[u8] = b"\0pecbox-blob\0";
/// Unreferenced files younger than this are left alone by the sweep.
pub const SWEEP_MIN_AGE: Duration = Duration::from_secs(3600);

pub(super) struct Blobs {
    dir: PathBuf,
    /// Writers (which may touch an existing file) against the sweep's check-and-unlink.
    sweeping: RwLock<()>,
}

/// A message's bytes as stored: inline, or a read-only map of its file.
pub enum Body {
    Inline(IVec),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Body::Inline(v) => v,
            Body::Mapped(m) => m,
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::Inline(IVec::default())
    }
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Body({} bytes)", self.len())
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        **self == **other
    }
}

impl PartialEq<[u8]> for Body {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<&[u8]> for Body {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Body {
    fn eq(&self, other: &&[u8; N]) -> bool {
        **self == other[..]
    }
}

impl PartialEq<Vec<u8>> for Body {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == other[..]
    }
}

/// A reference value: magic, size (u64 BE), hex SHA-256.
fn reference(size: u64, name: &str) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(&size.to_be_bytes());
    v.extend_from_slice(name.as_bytes());
    v
}

/// (size, file name) of a reference value; None for an inline body.
fn parse_reference(value: &[u8]) -> Option<(u64, &str)> {
    let rest = value.strip_prefix(MAGIC)?;
    let size = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let name = std::str::from_utf8(rest.get(8..)?).ok()?;
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())).then_some((size, name))
}

/// The size of the message a stored value stands for.
pub(super) fn stored_size(value: &[u8]) -> u64 {
    parse_reference(value).map_or(value.len() as u64, |(size, _)| size)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Blobs {
    pub(super) fn open(store_dir: &Path) -> Result<Self, StoreError> {
        let dir = store_dir.join("blobs");
        std::fs::create_dir_all(&dir).map_err(backend)?;
        Ok(Self {
            dir,
            sweeping: RwLock::new(()),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Makes sure a file holds `bytes` durably; its name.
    fn write(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let name = hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
        let path = self.path(&name);
        let _writer = self.sweeping.read().unwrap_or_else(|e| e.into_inner());
        if let Ok(file) = std::fs::File::open(&path) {
            if file.metadata().map(|m| m.len()).ok() == Some(bytes.len() as u64) {
                // young again: the sweep must not take it while we refer to it
                let _ = std::fs::File::options()
                    .append(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                return Ok(name);
            }
        }
        let tmp = self.dir.join(format!(
            ".tmp-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::Backend(format!(
                "cannot write {}: {e}",
                path.display()
            )));
        }
        Ok(name)
    }

    fn read(&self, value: IVec) -> Result<Body, StoreError> {
        let Some((size, name)) = parse_reference(&value) else {
            return Ok(Body::Inline(value));
        };
        let path = self.path(name);
        let file = std::fs::File::open(&path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        // SAFETY: blob files are written once under their content's hash and never
        // modified; the sweep removes only files no record refers to.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        if map.len() as u64 != size {
            return Err(StoreError::Corrupt {
                key: name.to_string(),
                reason: format!("{} bytes on disk, {size} expected", map.len()),
            });
        }
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Body::Mapped(map))
    }
}

impl Txn<'_> {
    /// Stores a message body under `key`: inline when small, else as a file.
    pub(super) fn put_body(&mut self, key: Vec<u8>, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.len() <= INLINE_MAX {
            return self.put(key, bytes.to_vec());
        }
        let name = self.blobs.write(bytes)?;
        self.put(keys::blob_ref(&name, &key), Vec::new())?;
        self.put(key, reference(bytes.len() as u64, &name))
    }

    /// Stores under `key` the same body as `value` (a value read from another key).
    pub(super) fn put_body_value(&mut self, key: Vec<u8>, value: &[u8]) -> Result<(), StoreError> {
        if let Some((_, name)) = parse_reference(value) {
            self.put(keys::blob_ref(name, &key), Vec::new())?;
        }
        self.put(key, value.to_vec())
    }

    /// Removes the body under `key`; the size of what it held.
    pub(super) fn del_body(&mut self, key: Vec<u8>) -> Result<Option<u64>, StoreError> {
        let Some(value) = self.del(key.clone())? else {
            return Ok(None);
        };
        if let Some((_, name)) = parse_reference(&value) {
            self.del(keys::blob_ref(name, &key))?;
        }
        Ok(Some(stored_size(&value)))
    }

    pub(super) fn get_body(&mut self, key: &[u8]) -> Result<Option<Body>, StoreError> {
        use super::kv::Kv;
        match self.get(key)? {
            Some(v) => self.blobs.read(v).map(Some),
            None => Ok(None),
        }
    }
}

impl Store {
    pub(super) fn read_body(&self, value: IVec) -> Result<Body, StoreError> {
        self.blobs.read(value)
    }

    /// Removes body files no record refers to and older than `min_age`; how many.
    pub fn sweep_blobs(&self, min_age: Duration) -> Result<usize, StoreError> {
        let entries = std::fs::read_dir(&self.blobs.dir).map_err(backend)?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let _sweep = self
                .blobs
                .sweeping
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if !old {
                continue;
            }
            let referenced = match name.len() {
                64 => self
                    .db
                    .scan_prefix(keys::blob_refs(&name))
                    .next()
                    .transpose()
                    .map_err(backend)?
                    .is_some(),
                _ => !name.starts_with(".tmp-"),
            };
            if !referenced && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_never_match_a_message() {
        let name = "ab".repeat(32);
        let v = reference(31_457_280, &name);
        assert_eq!(parse_reference(&v), Some((31_457_280, name.as_str())));
        assert_eq!(stored_size(&v), 31_457_280);
        assert_eq!(parse_reference(b"From: a@b\r\n\r\nx"), None);
        assert_eq!(stored_size(b"From: a@b\r\n\r\nx"), 14);
        let mut short = v.clone();
        short.truncate(v.len() - 1);
        assert_eq!(parse_reference(&short), None);
    }
}
