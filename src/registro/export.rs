//! One month as a self-contained file (`pecbox-registro/1`): records, kept receipts,
//! the signed checkpoint and the signing certificate, verifiable on another machine
//! (docs/registro.md shows how, even without pecbox).

use std::io::Write;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::chain::Chain;
use super::{check_checkpoint, index, Checkpoint, Record, Registro, RegistroError, VerifyReport};

impl Registro {
    /// A self-contained file with one month: its records, the receipts kept with
    /// them, the checkpoint that seals it (made now if the month is still open) and
    /// the certificate to check it with. Written as it is read, a record and a receipt
    /// at a time, so a busy month costs no memory (the daemon stays small on a Pi).
    pub fn export_to(
        &self,
        month: &str,
        signer: &crate::smime::Signer,
        provider: &str,
        out: &mut dyn Write,
    ) -> Result<u64, RegistroError> {
        self.settle()?;
        if !self.months().iter().any(|m| m == month) {
            return Err(RegistroError::Invalid(format!("no records for {month}")));
        }
        let checkpoint = match self.checkpoint(month)? {
            Some(cp) => cp,
            None => self.make_checkpoint(month, signer, provider)?,
        };
        let certificate = pem::encode(&pem::Pem::new(
            "CERTIFICATE",
            signer.certificate_der().to_vec(),
        ));
        let io = |e: std::io::Error| RegistroError::Storage(format!("writing the export: {e}"));
        write!(
            out,
            "{{\"format\":{},\"month\":{},\"provider\":{},\"certificate\":{},\"checkpoint\":{},\"records\":[",
            json(&EXPORT_FORMAT),
            json(&month),
            json(&provider),
            json(&certificate),
            json(&checkpoint),
        )
        .map_err(io)?;
        // An open month keeps growing: the export stops where its checkpoint does.
        let mut kept = Vec::new();
        let mut count = 0;
        for record in self.records(month)? {
            let record = record?;
            if record.seq > checkpoint.last_seq {
                break;
            }
            if count > 0 {
                out.write_all(b",").map_err(io)?;
            }
            serde_json::to_writer(&mut *out, &record)
                .map_err(|e| RegistroError::Storage(format!("writing the export: {e}")))?;
            if record.receipt {
                kept.extend(record.event.message_id);
            }
            count += 1;
        }
        out.write_all(b"],\"receipts\":{").map_err(io)?;
        let mut seen = std::collections::HashSet::new();
        for id in kept {
            let key = index::strip_angles(&id).to_ascii_lowercase();
            if seen.contains(&key) {
                continue;
            }
            let Some(data) = self.kept_receipt(month, &id)? else {
                continue;
            };
            if !seen.is_empty() {
                out.write_all(b",").map_err(io)?;
            }
            write!(
                out,
                "{}:\"{}\"",
                json(&key),
                base64::engine::general_purpose::STANDARD.encode(data)
            )
            .map_err(io)?;
            seen.insert(key);
        }
        out.write_all(b"}}").map_err(io)?;
        out.flush().map_err(io)?;
        Ok(count)
    }

    /// [`Registro::export_to`] into memory.
    pub fn export(
        &self,
        month: &str,
        signer: &crate::smime::Signer,
        provider: &str,
    ) -> Result<Vec<u8>, RegistroError> {
        let mut out = Vec::new();
        self.export_to(month, signer, provider, &mut out)?;
        Ok(out)
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

const EXPORT_FORMAT: &str = "pecbox-registro/1";

#[derive(Debug, Serialize, Deserialize)]
pub struct Export {
    pub format: String,
    pub month: String,
    pub provider: String,
    /// PEM of the signing certificate (a convenience: trust comes from `--ca`).
    pub certificate: String,
    pub checkpoint: Checkpoint,
    pub records: Vec<Record>,
    /// message-id → base64 of the compressed receipt.
    pub receipts: std::collections::BTreeMap<String, String>,
}

/// Verifies an exported month on its own, reading it as a stream: an export of any size
/// is checked a record at a time.
pub fn verify_export(
    reader: impl std::io::Read,
    anchors: &[Vec<u8>],
) -> Result<VerifyReport, RegistroError> {
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let walk = serde::Deserializer::deserialize_map(&mut de, Walk::default())
        .and_then(|walk| de.end().map(|()| walk))
        .map_err(|e| RegistroError::Invalid(format!("not a registro export: {e}")))?;
    match walk.format.as_deref() {
        Some(EXPORT_FORMAT) => {}
        Some(other) => {
            return Err(RegistroError::Invalid(format!(
                "unknown export format {other}"
            )))
        }
        None => {
            return Err(RegistroError::Invalid(
                "not a registro export: no format".into(),
            ))
        }
    }
    let cp = walk
        .checkpoint
        .ok_or_else(|| RegistroError::Invalid("not a registro export: no checkpoint".into()))?;
    let mut report = VerifyReport {
        months: walk.month.into_iter().collect(),
        records: walk.count,
        checkpoints: 1,
        ..VerifyReport::default()
    };
    if let Some(broken) = walk.broken {
        report.broken = Some(broken);
        return Ok(report);
    }
    // Records read before the checkpoint: they must start where it says.
    if let Some((seq, prev)) = walk.unanchored_start {
        if seq != cp.first_seq || prev != cp.prev_hash {
            report.broken = Some((
                seq,
                format!("record {seq} is not where the checkpoint starts the month"),
            ));
            return Ok(report);
        }
    }
    let chain = walk.chain.unwrap_or_else(|| {
        Chain::new(Some((cp.first_seq.saturating_sub(1), cp.prev_hash.clone())))
    });
    if let Some(broken) = check_checkpoint(&cp, &chain, walk.count, anchors, &mut report) {
        report.broken = Some(broken);
    }
    Ok(report)
}

/// What a pass over an export gathers.
#[derive(Default)]
struct Walk {
    format: Option<String>,
    month: Option<String>,
    checkpoint: Option<Checkpoint>,
    chain: Option<Chain>,
    /// The first record, when the records came before the checkpoint.
    unanchored_start: Option<(u64, String)>,
    count: u64,
    broken: Option<(u64, String)>,
}

impl<'de> serde::de::Visitor<'de> for Walk {
    type Value = Walk;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a pecbox registro export")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<Walk, A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format" => self.format = Some(map.next_value()?),
                "month" => self.month = Some(map.next_value()?),
                "checkpoint" => self.checkpoint = Some(map.next_value()?),
                "records" => map.next_value_seed(Records(&mut self))?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(self)
    }
}

/// The records array, checked one by one as it is read.
struct Records<'a>(&'a mut Walk);

impl<'de> serde::de::DeserializeSeed<'de> for Records<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Records<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the records of a month")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let walk = self.0;
        let mut chain = walk.chain.take().unwrap_or_else(|| match &walk.checkpoint {
            Some(cp) => Chain::new(Some((cp.first_seq.saturating_sub(1), cp.prev_hash.clone()))),
            None => Chain::new(None),
        });
        while let Some(record) = seq.next_element::<Record>()? {
            if walk.broken.is_some() {
                continue;
            }
            if walk.count == 0 && walk.checkpoint.is_none() {
                walk.unanchored_start = Some((record.seq, record.prev.clone()));
            }
            match chain.check(&record) {
                Ok(()) => walk.count += 1,
                Err(broken) => walk.broken = Some(broken),
            }
        }
        walk.chain = Some(chain);
        Ok(())
    }
}
