//! The seal of a month: its first and last record, count and hashes, signed by the
//! provider (a detached CMS that `openssl smime -verify` accepts). Made when a month is
//! closed; kept in the store after the month is dropped, so what remains still chains to
//! a signed point.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::chain::Chain;
use super::{index, month_of, segment, writer, Record, Registro, RegistroError, VerifyReport};

/// The seal of a closed month: its last record and hash, signed by the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub month: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u64,
    /// Hash of the record before the month (the chain link into it).
    pub prev_hash: String,
    pub last_hash: String,
    pub provider: String,
    pub created: String,
    /// Base64 DER CMS (detached) over the JSON of the fields above.
    #[serde(default)]
    pub signature: String,
}

#[derive(Serialize)]
struct CheckpointBody<'a> {
    month: &'a str,
    first_seq: u64,
    last_seq: u64,
    count: u64,
    prev_hash: &'a str,
    last_hash: &'a str,
    provider: &'a str,
    created: &'a str,
}

impl Checkpoint {
    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&CheckpointBody {
            month: &self.month,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            count: self.count,
            prev_hash: &self.prev_hash,
            last_hash: &self.last_hash,
            provider: &self.provider,
            created: &self.created,
        })
        .unwrap_or_default()
    }

    fn sign(&mut self, signer: &crate::smime::Signer) -> Result<(), RegistroError> {
        let der = signer
            .sign_detached(&self.signed_bytes(), Utc::now())
            .map_err(|e| RegistroError::Signing(e.to_string()))?;
        self.signature = base64::engine::general_purpose::STANDARD.encode(der);
        Ok(())
    }

    /// Checks the signature (and, with anchors, who made it). Returns the signer.
    pub fn verify(&self, anchors: &[Vec<u8>]) -> Result<String, String> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|_| format!("checkpoint {}: signature is not base64", self.month))?;
        let options = crate::smime::VerifyOptions {
            anchors: anchors.to_vec(),
            at: None,
        };
        let v = crate::smime::verify_detached(&self.signed_bytes(), &der, &options)
            .map_err(|e| format!("checkpoint {}: {e}", self.month))?;
        if let Err(e) = &v.integrity {
            return Err(format!(
                "checkpoint {}: signature does not match: {e}",
                self.month
            ));
        }
        if !anchors.is_empty() && !v.is_valid() {
            return Err(format!(
                "checkpoint {}: {}",
                self.month,
                v.problems().join("; ")
            ));
        }
        Ok(v.signer.map(|s| s.subject).unwrap_or_default())
    }
}

impl Registro {
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, RegistroError> {
        let mut out = Vec::new();
        for item in self.meta.scan_prefix(b"cp/") {
            let (_, v) = item?;
            out.push(
                serde_json::from_slice(&v)
                    .map_err(|e| RegistroError::Corrupt(format!("checkpoint: {e}")))?,
            );
        }
        Ok(out)
    }

    pub(super) fn checkpoint(&self, month: &str) -> Result<Option<Checkpoint>, RegistroError> {
        match self.meta.get(format!("cp/{month}"))? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| RegistroError::Corrupt(format!("checkpoint {month}: {e}"))),
            None => Ok(None),
        }
    }

    /// Seals every month before `now`'s that has no checkpoint yet and folds every
    /// month's new index entries into its sorted index.
    pub fn close_months(
        &self,
        now: DateTime<Utc>,
        signer: &crate::smime::Signer,
        provider: &str,
    ) -> Result<Vec<String>, RegistroError> {
        self.settle()?;
        let current = month_of(now);
        let mut closed = Vec::new();
        for month in self.months() {
            if month < current
                && !segment::is_empty(&self.root, &month)
                && self.checkpoint(&month)?.is_none()
            {
                let cp = self.make_checkpoint(&month, signer, provider)?;
                self.meta.insert(
                    format!("cp/{month}"),
                    serde_json::to_vec(&cp).unwrap_or_default(),
                )?;
                closed.push(month.clone());
            }
            let _w = writer();
            index::compact(&self.root.join(&month))?;
        }
        self.meta.flush()?;
        Ok(closed)
    }

    pub(super) fn make_checkpoint(
        &self,
        month: &str,
        signer: &crate::smime::Signer,
        provider: &str,
    ) -> Result<Checkpoint, RegistroError> {
        let mut first: Option<Record> = None;
        let mut last: Option<Record> = None;
        let mut count = 0;
        for r in self.records(month)? {
            let r = r?;
            if first.is_none() {
                first = Some(r.clone());
            }
            last = Some(r);
            count += 1;
        }
        let (first, last) = match (first, last) {
            (Some(f), Some(l)) => (f, l),
            _ => return Err(RegistroError::Invalid(format!("month {month} is empty"))),
        };
        let mut cp = Checkpoint {
            month: month.to_string(),
            first_seq: first.seq,
            last_seq: last.seq,
            count,
            prev_hash: first.prev,
            last_hash: last.hash,
            provider: provider.to_string(),
            created: Utc::now().to_rfc3339(),
            signature: String::new(),
        };
        cp.sign(signer)?;
        Ok(cp)
    }
}

pub(super) fn check_checkpoint(
    cp: &Checkpoint,
    chain: &Chain,
    count: u64,
    anchors: &[Vec<u8>],
    report: &mut VerifyReport,
) -> Option<(u64, String)> {
    if cp.count != count || cp.last_seq + 1 != chain.expected_seq() || cp.last_hash != chain.prev {
        return Some((
            cp.last_seq,
            format!(
                "month {} does not match its checkpoint (records {count} vs {}, last {} vs {})",
                cp.month,
                cp.count,
                chain.expected_seq().saturating_sub(1),
                cp.last_seq
            ),
        ));
    }
    match cp.verify(anchors) {
        Ok(signer) => {
            report.signer = Some(signer);
            None
        }
        Err(e) => Some((cp.last_seq, e)),
    }
}
