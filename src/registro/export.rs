//! One month as a self-contained file (`pecbox-registro/1`): records, kept receipts,
//! the signed checkpoint and the signing certificate, verifiable on another machine
//! (docs/registro.md shows how, even without pecbox).

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::chain::Chain;
use super::{check_checkpoint, index, Checkpoint, Record, Registro, RegistroError, VerifyReport};

impl Registro {
    /// A self-contained file with one month: its records, the receipts kept with
    /// them, the checkpoint that seals it (made now if the month is still open) and
    /// the certificate to check it with.
    pub fn export(
        &self,
        month: &str,
        signer: &crate::smime::Signer,
        provider: &str,
    ) -> Result<Vec<u8>, RegistroError> {
        self.settle()?;
        if !self.months().iter().any(|m| m == month) {
            return Err(RegistroError::Invalid(format!("no records for {month}")));
        }
        let checkpoint = match self.checkpoint(month)? {
            Some(cp) => cp,
            None => self.make_checkpoint(month, signer, provider)?,
        };
        let records: Vec<Record> = self.records(month)?.collect::<Result<_, _>>()?;
        let mut receipts = std::collections::BTreeMap::new();
        for r in records.iter().filter(|r| r.receipt) {
            let Some(id) = r.event.message_id.as_deref() else {
                continue;
            };
            if let Some(data) = self.kept_receipt(month, id)? {
                let id = index::strip_angles(id).to_ascii_lowercase();
                receipts.insert(id, base64::engine::general_purpose::STANDARD.encode(data));
            }
        }
        let export = Export {
            format: EXPORT_FORMAT.into(),
            month: month.to_string(),
            provider: provider.to_string(),
            certificate: pem::encode(&pem::Pem::new(
                "CERTIFICATE",
                signer.certificate_der().to_vec(),
            )),
            checkpoint,
            records,
            receipts,
        };
        serde_json::to_vec_pretty(&export).map_err(|e| RegistroError::Corrupt(e.to_string()))
    }
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

/// Verifies an exported month on its own.
pub fn verify_export(bytes: &[u8], anchors: &[Vec<u8>]) -> Result<VerifyReport, RegistroError> {
    let export: Export = serde_json::from_slice(bytes)
        .map_err(|e| RegistroError::Invalid(format!("not a registro export: {e}")))?;
    if export.format != EXPORT_FORMAT {
        return Err(RegistroError::Invalid(format!(
            "unknown export format {}",
            export.format
        )));
    }
    let mut report = VerifyReport {
        months: vec![export.month.clone()],
        ..VerifyReport::default()
    };
    let cp = &export.checkpoint;
    let mut chain = Chain::new(Some((cp.first_seq.saturating_sub(1), cp.prev_hash.clone())));
    for record in &export.records {
        if let Err(broken) = chain.check(record) {
            report.broken = Some(broken);
            return Ok(report);
        }
        report.records += 1;
    }
    report.checkpoints = 1;
    if let Some(broken) = check_checkpoint(cp, &chain, report.records, anchors, &mut report) {
        report.broken = Some(broken);
    }
    Ok(report)
}
