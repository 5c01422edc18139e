//! SEARCH keys against one message, and sequence sets.

use chrono::NaiveDate;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::mime::Mime;
use crate::store::MessageMeta;

/// Whether `n` is in `set`, `*` standing for `star` (RFC 3501 §9: `a:b` = `b:a`).
pub fn in_set(set: &SequenceSet, n: u32, star: u32) -> bool {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => star,
    };
    set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(v) => value(v) == n,
        Sequence::Range(a, b) => {
            let (a, b) = (value(a), value(b));
            a.min(b) <= n && n <= a.max(b)
        }
    })
}

/// The largest explicit number of a set (to reject sequence numbers past the end).
pub fn largest_explicit(set: &SequenceSet) -> u32 {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => 0,
    };
    set.0
        .as_ref()
        .iter()
        .map(|s| match s {
            Sequence::Single(v) => value(v),
            // `7:*` in a mailbox of 5 is 5:7 → fine only if 7 exists; treat like 7
            Sequence::Range(a, b) => value(a).max(value(b)),
        })
        .max()
        .unwrap_or(0)
}

pub fn has_flag(meta: &MessageMeta, flag: &str) -> bool {
    meta.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// Does any key need the message itself (headers, text, Date)?
pub fn needs_message(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_message),
        SearchKey::Not(k) => needs_message(k),
        SearchKey::Or(a, b) => needs_message(a) || needs_message(b),
        SearchKey::Bcc(_)
        | SearchKey::Body(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Subject(_)
        | SearchKey::Text(_)
        | SearchKey::To(_) => true,
        _ => false,
    }
}

/// One message as SEARCH sees it.
pub struct Candidate<'a, 'm> {
    pub seq: u32,
    pub meta: &'a MessageMeta,
    /// Present when [`needs_message`]; None if it could not be read.
    pub mime: Option<&'a Mime<'m>>,
    /// Messages in the mailbox (`*` of sequence sets) and largest uid (`*` of uid sets).
    pub count: u32,
    pub max_uid: u32,
}

fn lower(s: &impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(s.as_ref()).to_lowercase()
}

impl Candidate<'_, '_> {
    fn header_contains(&self, name: &str, needle: &str) -> bool {
        let Some(mime) = self.mime else { return false };
        mime.header_text(name).iter().any(|v| v.contains(needle))
    }

    fn date(&self) -> NaiveDate {
        super::local_date(self.meta.internal_date)
    }

    fn sent(&self) -> Option<NaiveDate> {
        self.mime.and_then(|m| m.sent_date())
    }

    pub fn matches(&self, key: &SearchKey<'_>) -> bool {
        let flag = |f: &str| has_flag(self.meta, f);
        match key {
            SearchKey::And(keys) => keys.as_ref().iter().all(|k| self.matches(k)),
            SearchKey::SequenceSet(set) => in_set(set, self.seq, self.count),
            SearchKey::Uid(set) => in_set(set, self.meta.uid, self.max_uid),
            SearchKey::All => true,
            SearchKey::Answered => flag("\\Answered"),
            SearchKey::Unanswered => !flag("\\Answered"),
            SearchKey::Deleted => flag("\\Deleted"),
            SearchKey::Undeleted => !flag("\\Deleted"),
            SearchKey::Draft => flag("\\Draft"),
            SearchKey::Undraft => !flag("\\Draft"),
            SearchKey::Flagged => flag("\\Flagged"),
            SearchKey::Unflagged => !flag("\\Flagged"),
            SearchKey::Seen => flag("\\Seen"),
            SearchKey::Unseen => !flag("\\Seen"),
            SearchKey::Keyword(k) => flag(k.as_ref()),
            SearchKey::Unkeyword(k) => !flag(k.as_ref()),
            // pecbox never reports \Recent
            SearchKey::New | SearchKey::Recent => false,
            SearchKey::Old => true,
            SearchKey::Larger(n) => self.meta.size > u64::from(*n),
            SearchKey::Smaller(n) => self.meta.size < u64::from(*n),
            SearchKey::Before(d) => self.date() < *d.as_ref(),
            SearchKey::On(d) => self.date() == *d.as_ref(),
            SearchKey::Since(d) => self.date() >= *d.as_ref(),
            SearchKey::SentBefore(d) => self.sent().is_some_and(|s| s < *d.as_ref()),
            SearchKey::SentOn(d) => self.sent().is_some_and(|s| s == *d.as_ref()),
            SearchKey::SentSince(d) => self.sent().is_some_and(|s| s >= *d.as_ref()),
            SearchKey::Not(k) => !self.matches(k),
            SearchKey::Or(a, b) => self.matches(a) || self.matches(b),
            SearchKey::From(s) => self.header_contains("from", &lower(s)),
            SearchKey::To(s) => self.header_contains("to", &lower(s)),
            SearchKey::Cc(s) => self.header_contains("cc", &lower(s)),
            SearchKey::Bcc(s) => self.header_contains("bcc", &lower(s)),
            SearchKey::Subject(s) => self.header_contains("subject", &lower(s)),
            SearchKey::Header(name, value) => {
                let Some(mime) = self.mime else { return false };
                let needle = lower(value);
                let values = mime.header_text(&String::from_utf8_lossy(name.as_ref()));
                // An empty value matches every message that has the field.
                values.iter().any(|v| v.contains(&needle))
            }
            SearchKey::Body(s) => self.mime.is_some_and(|m| m.body_text().contains(&lower(s))),
            SearchKey::Text(s) => self.mime.is_some_and(|m| {
                let needle = lower(s);
                m.header_block_text().contains(&needle) || m.body_text().contains(&needle)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap_sequence_sets() {
        let set: SequenceSet = "1,3:5,9:*".parse().unwrap();
        assert!(in_set(&set, 1, 20));
        assert!(!in_set(&set, 2, 20));
        assert!(in_set(&set, 4, 20));
        assert!(in_set(&set, 15, 20));
        assert!(!in_set(&set, 8, 20));
        // 9:* with * = 7 is 7:9
        assert!(in_set(&set, 7, 7));
        assert_eq!(largest_explicit(&set), 9);
    }
}
