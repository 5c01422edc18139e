//! The hash chain: each record holds the SHA-256 of the one before it, over a fixed
//! serialization, so editing, deleting or reordering a record breaks the chain there.

use chrono::{DateTime, Utc};
use ring::digest;
use serde::{Deserialize, Serialize};

use super::Event;
use crate::pec::timestamp::PecTime;

pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One record of the registro.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339 in Italian legal time.
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
    /// A copy of the message this event emitted is kept (`pecbox log receipt`).
    #[serde(default)]
    pub receipt: bool,
    /// Hash of the previous record (hex SHA-256).
    pub prev: String,
    /// SHA-256 over `prev` and everything above.
    pub hash: String,
}

/// The part of a record the hash covers, in a fixed field order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    time: &'a str,
    #[serde(flatten)]
    event: &'a Event,
    receipt: bool,
}

impl Record {
    pub(super) fn compute_hash(&self) -> String {
        let body = serde_json::to_vec(&Hashed {
            seq: self.seq,
            time: &self.time,
            event: &self.event,
            receipt: self.receipt,
        })
        .unwrap_or_default();
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(self.prev.as_bytes());
        ctx.update(&body);
        hex(ctx.finish().as_ref())
    }

    pub fn utc(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.time)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Head {
    pub(super) seq: u64,
    #[serde(with = "hex_array")]
    pub(super) hash: [u8; 32],
}

mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if text.len() != 64 {
            return Err(serde::de::Error::custom("bad hash length"));
        }
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn new_record(
    head: Option<Head>,
    event: Event,
    time: DateTime<Utc>,
    receipt: bool,
) -> (Record, Head) {
    let (seq, prev) = match head {
        Some(h) => (h.seq + 1, hex(&h.hash)),
        None => (1, GENESIS.to_string()),
    };
    let mut record = Record {
        seq,
        time: PecTime::italian(time).datetime().to_rfc3339(),
        event,
        receipt,
        prev,
        hash: String::new(),
    };
    record.hash = record.compute_hash();
    let mut hash = [0u8; 32];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&record.hash[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    (record, Head { seq, hash })
}

pub(super) fn head_of(r: &Record) -> Head {
    let mut hash = [0u8; 32];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = r
            .hash
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    Head { seq: r.seq, hash }
}

/// Walks records in order and says where the chain breaks.
pub(super) struct Chain {
    pub(super) next: Option<u64>,
    pub(super) prev: String,
}

impl Chain {
    pub(super) fn new(start: Option<(u64, String)>) -> Self {
        match start {
            Some((last_seq, last_hash)) => Self {
                next: Some(last_seq + 1),
                prev: last_hash,
            },
            None => Self {
                next: None,
                prev: GENESIS.to_string(),
            },
        }
    }

    pub(super) fn expected_seq(&self) -> u64 {
        self.next.unwrap_or(1)
    }

    pub(super) fn check(&mut self, r: &Record) -> Result<(), (u64, String)> {
        let expected = self
            .next
            .unwrap_or(if r.prev == GENESIS { 1 } else { r.seq });
        if r.seq != expected {
            return Err((
                expected,
                format!(
                    "record {expected} is missing or out of place (found {} there)",
                    r.seq
                ),
            ));
        }
        if self.next.is_some() && r.prev != self.prev {
            return Err((
                r.seq,
                format!("record {} does not follow record {}", r.seq, r.seq - 1),
            ));
        }
        if r.compute_hash() != r.hash {
            return Err((r.seq, format!("record {} was altered", r.seq)));
        }
        self.next = Some(r.seq + 1);
        self.prev = r.hash.clone();
        Ok(())
    }
}
