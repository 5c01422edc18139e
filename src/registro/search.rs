//! Finding records: by the month indexes (every indexed field given narrows the
//! candidates), then each candidate checked against the whole query.

use chrono::{DateTime, Utc};

use super::{
    decompress, index, month_of, reader, segment, EventKind, Record, Registro, RegistroError,
};

/// What to look for; every given field must match.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Query {
    pub identificativo: Option<String>,
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub kind: Option<EventKind>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

impl Registro {
    /// Records matching `q`, oldest first.
    pub fn search(&self, q: &Query) -> Result<Vec<Record>, RegistroError> {
        self.settle()?;
        // A record lies in its own month's folder, or in a later one marked backdated.
        let months: Vec<String> = self
            .months()
            .into_iter()
            .filter(|m| q.since.is_none_or(|t| *m >= month_of(t)))
            .filter(|m| {
                q.until.is_none_or(|t| *m <= month_of(t)) || segment::has_backdated(&self.root, m)
            })
            .collect();
        // Every indexed field given narrows the candidates (offsets intersected), so a
        // holder's logins are not found by reading all the holder's records.
        let keys: Vec<u64> = [
            q.identificativo.as_deref().map(index::key_identificativo),
            q.message_id.as_deref().map(index::key_message_id),
            q.sender.as_deref().map(index::key_sender),
            q.recipient.as_deref().map(index::key_recipient),
            q.kind.map(|k| index::key_kind(k.as_str())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut out = Vec::new();
        for month in months {
            let mut keep = |r: Record| {
                if matches(&r, q) {
                    out.push(r);
                }
                q.limit.is_some_and(|l| out.len() >= l)
            };
            if keys.is_empty() {
                for line in segment::Lines::open(&self.root, &month)? {
                    if let (_, _, Ok(r)) = line? {
                        if keep(r) {
                            return Ok(out);
                        }
                    }
                }
            } else {
                let offsets = {
                    let _r = reader();
                    let dir = self.root.join(&month);
                    let mut found: Option<Vec<u64>> = None;
                    for key in &keys {
                        let hits = index::lookup(&dir, *key)?;
                        found = Some(match found {
                            None => hits,
                            Some(before) => intersect(&before, &hits),
                        });
                        if found.as_ref().is_some_and(Vec::is_empty) {
                            break;
                        }
                    }
                    found.unwrap_or_default()
                };
                let mut reader = segment::RecordReader::open(&self.root, &month)?;
                for offset in offsets {
                    if offset & index::RECEIPT_FLAG != 0 {
                        continue;
                    }
                    if let Some(r) = reader.at(offset) {
                        if keep(r) {
                            return Ok(out);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every record of one transaction, as a timeline.
    pub fn timeline(&self, identificativo: &str) -> Result<Vec<Record>, RegistroError> {
        let mut records = self.search(&Query {
            identificativo: Some(identificativo.to_string()),
            ..Query::default()
        })?;
        records.sort_by_key(|r| r.seq);
        Ok(records)
    }

    /// The signed bytes of a receipt or notice this provider emitted.
    pub fn receipt(&self, message_id: &str) -> Result<Option<Vec<u8>>, RegistroError> {
        self.settle()?;
        for month in self.months().iter().rev() {
            if let Some(v) = self.kept_receipt(month, message_id)? {
                return decompress(&v).map(Some);
            }
        }
        Ok(None)
    }

    /// The compressed receipt kept in `month` under `message_id`.
    pub(super) fn kept_receipt(
        &self,
        month: &str,
        message_id: &str,
    ) -> Result<Option<Vec<u8>>, RegistroError> {
        let key = index::key_receipt(message_id);
        let offsets = {
            let _r = reader();
            index::lookup(&self.root.join(month), key)?
        };
        for offset in offsets {
            if offset & index::RECEIPT_FLAG == 0 {
                continue;
            }
            let at = offset & !index::RECEIPT_FLAG;
            if let Some(v) = segment::receipt_at(&self.root, month, at, message_id)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

/// The common elements of two ascending lists.
fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn matches(r: &Record, q: &Query) -> bool {
    let eq = |a: &Option<String>, b: &Option<String>| match b {
        None => true,
        Some(b) => a.as_deref().is_some_and(|a| {
            a.trim_start_matches('<')
                .trim_end_matches('>')
                .eq_ignore_ascii_case(b.trim_start_matches('<').trim_end_matches('>'))
        }),
    };
    let e = &r.event;
    eq(&e.identificativo, &q.identificativo)
        && (eq(&e.message_id, &q.message_id) || eq(&e.original_message_id, &q.message_id))
        && eq(&e.sender, &q.sender)
        && q.recipient
            .as_ref()
            .is_none_or(|want| e.recipients.iter().any(|x| x.eq_ignore_ascii_case(want)))
        && q.kind.is_none_or(|k| e.kind == Some(k))
        && q.since.is_none_or(|t| r.utc().is_some_and(|rt| rt >= t))
        && q.until.is_none_or(|t| r.utc().is_some_and(|rt| rt <= t))
}
