//! Folder names as IMAP shows them: hierarchy, LIST patterns, special-use attributes.

use crate::store::{Store, StoreError, SENT};

/// Hierarchy delimiter: `Archive/2025`.
pub const DELIMITER: char = '/';

/// Special-use folders (RFC 6154) every mailbox gets, with their attribute.
pub const SPECIAL_USE: &[(&str, &str)] = &[
    (SENT, "Sent"),
    ("Drafts", "Drafts"),
    ("Trash", "Trash"),
    ("Archive", "Archive"),
    ("Junk", "Junk"),
];

/// The special-use attribute (without backslash) of a folder, if any.
pub fn special_use(name: &str) -> Option<&'static str> {
    SPECIAL_USE
        .iter()
        .find(|(folder, _)| *folder == name)
        .map(|(_, attr)| *attr)
}

/// Creates the special-use folders a mailbox lacks (Sent exists from the start).
pub fn ensure_special(store: &Store, address: &str) -> Result<(), StoreError> {
    let existing = store.folders(address)?;
    for (name, _) in SPECIAL_USE {
        if existing.iter().any(|(n, _)| n == name) {
            continue;
        }
        match store.create_folder(address, name) {
            Ok(_) | Err(StoreError::FolderExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The names above `name` in the hierarchy: `a/b/c` → `a`, `a/b`.
pub fn parents(name: &str) -> Vec<&str> {
    name.match_indices(DELIMITER)
        .map(|(i, _)| &name[..i])
        .filter(|p| !p.is_empty())
        .collect()
}

pub fn has_children(name: &str, all: &[String]) -> bool {
    all.iter().any(|other| {
        other.len() > name.len()
            && other.starts_with(name)
            && other[name.len()..].starts_with(DELIMITER)
    })
}

/// A LIST pattern against a name: `*` matches anything, `%` anything but the delimiter.
/// INBOX matches in any case.
pub fn matches(pattern: &str, name: &str) -> bool {
    if name == "INBOX" {
        return glob(pattern.to_ascii_uppercase().as_bytes(), b"INBOX");
    }
    glob(pattern.as_bytes(), name.as_bytes())
}

fn glob(p: &[u8], n: &[u8]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some((b'*', rest)) => (0..=n.len()).any(|i| glob(rest, &n[i..])),
        Some((b'%', rest)) => {
            let stop = n
                .iter()
                .position(|b| *b == DELIMITER as u8)
                .unwrap_or(n.len());
            (0..=stop).any(|i| glob(rest, &n[i..]))
        }
        Some((c, rest)) => n.first() == Some(c) && glob(rest, &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap_list_patterns() {
        assert!(matches("*", "Archive/2025"));
        assert!(matches("%", "Archive"));
        assert!(!matches("%", "Archive/2025"));
        assert!(matches("Archive/%", "Archive/2025"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("In*", "INBOX"));
        assert!(!matches("Sent", "Sent Items"));
        assert!(matches("S*t", "Sent"));
        assert_eq!(parents("a/b/c"), vec!["a", "a/b"]);
        let all = vec!["a".to_string(), "a/b".to_string(), "ab".to_string()];
        assert!(has_children("a", &all));
        assert!(!has_children("ab", &all));
    }
}
