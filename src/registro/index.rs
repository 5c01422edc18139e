//! The index of one month: 16-byte entries (key, offset), where the key is a 64-bit
//! FNV-1a hash of a field and its normalised value and the offset is where the record
//! starts in `records.jsonl` (or, with [`RECEIPT_FLAG`], where a kept receipt starts
//! in `receipts.bin`). Entries are appended to `index.log`; compaction merges them
//! into `index.sorted`, which lookups binary-search. A hash collision only costs a
//! read: every candidate is checked against the query.
//!
//! Key 0 is reserved for the coverage mark: after each record's entries comes
//! (0, end of that record's line), so after a crash we know which records the index
//! already holds. `index.sorted` keeps the highest mark as its first entry.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::segment::io_error;
use super::{Record, RegistroError};

pub(super) const SORTED: &str = "index.sorted";
pub(super) const LOG: &str = "index.log";
/// Set on offsets that point into `receipts.bin`.
pub(super) const RECEIPT_FLAG: u64 = 1 << 63;
const COVERAGE: u64 = 0;
const ENTRY: usize = 16;

fn fnv1a(field: u8, value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    feed(field);
    for b in value.trim().bytes() {
        feed(b.to_ascii_lowercase());
    }
    if h == COVERAGE {
        1
    } else {
        h
    }
}

pub(super) fn strip_angles(id: &str) -> &str {
    id.trim().trim_start_matches('<').trim_end_matches('>')
}

pub(super) fn key_identificativo(v: &str) -> u64 {
    fnv1a(b'i', v)
}
pub(super) fn key_message_id(v: &str) -> u64 {
    fnv1a(b'm', strip_angles(v))
}
pub(super) fn key_sender(v: &str) -> u64 {
    fnv1a(b's', v)
}
pub(super) fn key_recipient(v: &str) -> u64 {
    fnv1a(b't', v)
}
pub(super) fn key_kind(v: &str) -> u64 {
    fnv1a(b'k', v)
}
pub(super) fn key_receipt(message_id: &str) -> u64 {
    fnv1a(b'c', strip_angles(message_id))
}

/// The keys a record is found by.
pub(super) fn keys(r: &Record) -> Vec<u64> {
    let e = &r.event;
    let mut keys = Vec::with_capacity(4 + e.recipients.len());
    keys.extend(e.identificativo.as_deref().map(key_identificativo));
    keys.extend(e.message_id.as_deref().map(key_message_id));
    keys.extend(e.original_message_id.as_deref().map(key_message_id));
    keys.extend(e.sender.as_deref().map(key_sender));
    keys.extend(e.recipients.iter().map(|v| key_recipient(v)));
    keys.extend(e.kind.map(|k| key_kind(k.as_str())));
    keys
}

/// Entries of one record starting at `offset` and ending at `end`, mark last.
pub(super) fn record_entries(r: &Record, offset: u64, end: u64, out: &mut Vec<(u64, u64)>) {
    out.extend(keys(r).into_iter().map(|k| (k, offset)));
    out.push((COVERAGE, end));
}

fn encode(entries: &[(u64, u64)]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(entries.len() * ENTRY);
    for (k, o) in entries {
        buf.extend_from_slice(&k.to_be_bytes());
        buf.extend_from_slice(&o.to_be_bytes());
    }
    buf
}

fn decode(chunk: &[u8]) -> (u64, u64) {
    let mut k = [0u8; 8];
    let mut o = [0u8; 8];
    k.copy_from_slice(&chunk[..8]);
    o.copy_from_slice(&chunk[8..16]);
    (u64::from_be_bytes(k), u64::from_be_bytes(o))
}

/// Appends entries to `index.log` and makes them durable.
pub(super) fn append(dir: &Path, entries: &[(u64, u64)]) -> Result<(), RegistroError> {
    if entries.is_empty() {
        return Ok(());
    }
    let path = dir.join(LOG);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    file.write_all(&encode(entries))
        .and_then(|_| file.sync_data())
        .map_err(|e| io_error(&path, e))
}

fn read_all(path: &Path) -> Result<Vec<(u64, u64)>, RegistroError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => f.read_to_end(&mut bytes).map_err(|e| io_error(path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(path, e)),
    };
    Ok(bytes.chunks_exact(ENTRY).map(decode).collect())
}

/// Where the index's coverage of `records.jsonl` ends.
pub(super) fn covered(dir: &Path) -> Result<u64, RegistroError> {
    let mut end = 0;
    if let Ok(f) = File::open(dir.join(SORTED)) {
        let mut first = [0u8; ENTRY];
        if f.read_exact_at(&mut first, 0).is_ok() {
            let (k, o) = decode(&first);
            if k == COVERAGE {
                end = o;
            }
        }
    }
    for (k, o) in read_all(&dir.join(LOG))? {
        if k == COVERAGE {
            end = end.max(o);
        }
    }
    Ok(end)
}

/// Offsets stored under `key`, ascending, without duplicates.
pub(super) fn lookup(dir: &Path, key: u64) -> Result<Vec<u64>, RegistroError> {
    let mut found: Vec<u64> = read_all(&dir.join(LOG))?
        .into_iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, o)| o)
        .collect();
    let path = dir.join(SORTED);
    match File::open(&path) {
        Ok(f) => found.extend(lookup_sorted(&f, key).map_err(|e| io_error(&path, e))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&path, e)),
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

fn lookup_sorted(f: &File, key: u64) -> std::io::Result<Vec<u64>> {
    let n = f.metadata()?.len() / ENTRY as u64;
    let entry_at = |i: u64| -> std::io::Result<(u64, u64)> {
        let mut buf = [0u8; ENTRY];
        f.read_exact_at(&mut buf, i * ENTRY as u64)?;
        Ok(decode(&buf))
    };
    // First entry whose key is not below `key`.
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if entry_at(mid)?.0 < key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut out = Vec::new();
    let mut i = lo;
    while i < n {
        let (k, o) = entry_at(i)?;
        if k != key {
            break;
        }
        out.push(o);
        i += 1;
    }
    Ok(out)
}

/// Merges `index.log` into `index.sorted` (streaming the sorted file, so memory is
/// the log's size). Crash-safe: the new file replaces the old by rename; a log left
/// behind only duplicates entries, which lookups remove.
pub(super) fn compact(dir: &Path) -> Result<(), RegistroError> {
    let log_path = dir.join(LOG);
    let mut log = read_all(&log_path)?;
    if log.is_empty() {
        return Ok(());
    }
    let sorted_path = dir.join(SORTED);
    let mut mark = covered(dir)?;
    log.retain(|(k, _)| *k != COVERAGE);
    log.sort_unstable();
    let tmp = dir.join("index.sorted.tmp");
    let mut out = BufWriter::new(File::create(&tmp).map_err(|e| io_error(&tmp, e))?);
    let mut write = |entry: (u64, u64)| -> Result<(), RegistroError> {
        out.write_all(&encode(&[entry]))
            .map_err(|e| io_error(&tmp, e))
    };
    let old = match File::open(&sorted_path) {
        Ok(f) => Some(BufReader::with_capacity(1 << 16, f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&sorted_path, e)),
    };
    let mut old_entries = old.into_iter().flat_map(|mut r| {
        std::iter::from_fn(move || {
            let mut buf = [0u8; ENTRY];
            r.read_exact(&mut buf).ok().map(|_| decode(&buf))
        })
    });
    let mut next_old = old_entries.next();
    if let Some((COVERAGE, o)) = next_old {
        mark = mark.max(o);
        next_old = old_entries.next();
    }
    write((COVERAGE, mark))?;
    let mut new = log.into_iter().peekable();
    loop {
        match (next_old, new.peek().copied()) {
            (Some(a), Some(b)) if a <= b => {
                write(a)?;
                next_old = old_entries.next();
            }
            (_, Some(b)) => {
                write(b)?;
                new.next();
            }
            (Some(a), None) => {
                write(a)?;
                next_old = old_entries.next();
            }
            (None, None) => break,
        }
    }
    let file = out
        .into_inner()
        .map_err(|e| io_error(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| io_error(&tmp, e))?;
    std::fs::rename(&tmp, &sorted_path).map_err(|e| io_error(&sorted_path, e))?;
    super::segment::sync_dir(dir)?;
    std::fs::remove_file(&log_path).map_err(|e| io_error(&log_path, e))?;
    super::segment::sync_dir(dir)
}

/// Drops a torn last entry (a crash mid-write).
pub(super) fn repair(dir: &Path) -> Result<(), RegistroError> {
    let path = dir.join(LOG);
    if let Ok(meta) = std::fs::metadata(&path) {
        let whole = meta.len() - meta.len() % ENTRY as u64;
        if whole != meta.len() {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            f.set_len(whole).map_err(|e| io_error(&path, e))?;
        }
    }
    let _ = std::fs::remove_file(dir.join("index.sorted.tmp"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_and_angle_brackets() {
        assert_eq!(key_message_id("<A@B>"), key_message_id("a@b"));
        assert_ne!(key_message_id("a@b"), key_sender("a@b"));
    }

    #[test]
    fn compaction_merges_and_lookups_find_both_halves() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &[(5, 10), (3, 20), (COVERAGE, 30)]).unwrap();
        compact(dir.path()).unwrap();
        append(dir.path(), &[(5, 40), (7, 50), (COVERAGE, 60)]).unwrap();
        assert_eq!(lookup(dir.path(), 5).unwrap(), vec![10, 40]);
        assert_eq!(covered(dir.path()).unwrap(), 60);
        compact(dir.path()).unwrap();
        assert!(!dir.path().join(LOG).exists());
        assert_eq!(lookup(dir.path(), 5).unwrap(), vec![10, 40]);
        assert_eq!(lookup(dir.path(), 7).unwrap(), vec![50]);
        assert_eq!(lookup(dir.path(), 4).unwrap(), Vec::<u64>::new());
        assert_eq!(covered(dir.path()).unwrap(), 60);
    }
}
