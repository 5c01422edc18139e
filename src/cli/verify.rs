//! `pecbox verify FILE... [--json] [--ca PEM]... [--at RFC3339]` (interface.md §2):
//! checks PEC messages offline. Exit 0 all valid, 1 some invalid, 2 some unreadable.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::pec::classify::{classify, Class};
use crate::pec::daticert::Daticert;
use crate::smime::{self, Verification, VerifyOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Valid,
    Invalid,
    Unreadable,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Valid => 0,
            Outcome::Invalid => 1,
            Outcome::Unreadable => 2,
        }
    }
}

/// What `verify` says about one file; also its `--json` object.
#[derive(Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub outcome: Outcome,
    /// Why it is not valid (empty when valid).
    pub reasons: Vec<String>,
    /// Deviations that do not make it invalid.
    pub warnings: Vec<String>,
    pub kind: Option<String>,
    pub kind_name: Option<String>,
    pub classification: Option<String>,
    pub signer: Option<Signer>,
    pub signing_time: Option<DateTime<Utc>>,
    pub checked_at: Option<DateTime<Utc>>,
    pub digest: Option<String>,
    pub chain: Option<String>,
    pub daticert: Option<DaticertSummary>,
}

#[derive(Debug, Serialize)]
pub struct Signer {
    pub subject: String,
    pub issuer: String,
    pub emails: Vec<String>,
    pub sha1: String,
}

#[derive(Debug, Serialize)]
pub struct DaticertSummary {
    pub tipo: String,
    pub errore: String,
    pub errore_esteso: Option<String>,
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub subject: Option<String>,
    pub identificativo: String,
    pub msgid: Option<String>,
    pub gestore: String,
    pub date: String,
    pub ricevuta: Option<String>,
    pub consegna: Option<String>,
    pub ricezione: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Recipient {
    pub address: String,
    pub tipo: String,
}

impl From<&Daticert> for DaticertSummary {
    fn from(d: &Daticert) -> Self {
        Self {
            tipo: d.tipo.as_str().into(),
            errore: d.errore.as_str().into(),
            errore_esteso: d.errore_esteso.clone(),
            sender: d.mittente.clone(),
            recipients: d
                .destinatari
                .iter()
                .map(|r| Recipient {
                    address: r.indirizzo.clone(),
                    tipo: r.tipo.as_str().into(),
                })
                .collect(),
            subject: d.oggetto.clone(),
            identificativo: d.identificativo.clone(),
            msgid: d.msgid.clone(),
            gestore: d.gestore_emittente.clone(),
            date: d.data.datetime().to_rfc3339(),
            ricevuta: d.ricevuta.map(|r| r.as_str().into()),
            consegna: d.consegna.clone(),
            ricezione: d.ricezione.clone(),
        }
    }
}

/// Checks one file against the given anchors (DER certificates).
pub fn verify_file(path: &Path, anchors: &[Vec<u8>], at: Option<DateTime<Utc>>) -> Report {
    let mut report = empty_report(path.display().to_string());
    let raw = match std::fs::read(path) {
        Ok(raw) => raw,
        Err(e) => {
            report.reasons.push(format!("cannot read the file: {e}"));
            return report;
        }
    };
    verify_bytes(&raw, anchors, at, report)
}

/// Checks one message already in memory; `file` names it in the report.
pub fn verify_raw(
    file: &str,
    raw: &[u8],
    anchors: &[Vec<u8>],
    at: Option<DateTime<Utc>>,
) -> Report {
    verify_bytes(raw, anchors, at, empty_report(file.to_string()))
}

fn empty_report(file: String) -> Report {
    Report {
        file,
        outcome: Outcome::Unreadable,
        reasons: Vec::new(),
        warnings: Vec::new(),
        kind: None,
        kind_name: None,
        classification: None,
        signer: None,
        signing_time: None,
        checked_at: None,
        digest: None,
        chain: None,
        daticert: None,
    }
}

fn verify_bytes(
    raw: &[u8],
    anchors: &[Vec<u8>],
    at: Option<DateTime<Utc>>,
    mut report: Report,
) -> Report {
    if !looks_like_message(raw) {
        report
            .reasons
            .push("not an e-mail message: it does not start with a header field".into());
        return report;
    }
    let classification = classify(raw);
    let options = VerifyOptions {
        anchors: anchors.to_vec(),
        at,
    };
    let verification = match smime::verify_message(raw, &options) {
        Ok(v) => Some(v),
        Err(smime::SmimeError::NotSigned) => None,
        Err(e) => {
            report
                .reasons
                .push(format!("the S/MIME structure cannot be read: {e}"));
            return report;
        }
    };
    report.outcome = Outcome::Valid;
    match &verification {
        Some(v) => describe_signature(v, &mut report),
        None => report
            .reasons
            .push("not S/MIME signed: no provider signature to check".into()),
    }
    match classification.class {
        Class::Pec(kind) => {
            report.kind = Some(kind.code().into());
            report.kind_name = Some(kind.italian_name().into());
        }
        Class::Ordinary => report
            .reasons
            .push(format!("not a PEC message ({})", classification.reason)),
        Class::Malformed => report
            .reasons
            .push(format!("malformed PEC message: {}", classification.reason)),
    }
    report.classification = Some(classification.reason.clone());
    report
        .warnings
        .extend(classification.problems.iter().cloned());
    report.daticert = classification.daticert.as_ref().map(DaticertSummary::from);
    if !report.reasons.is_empty() {
        report.outcome = Outcome::Invalid;
    }
    report
}

fn describe_signature(v: &Verification, report: &mut Report) {
    report.signing_time = v.signing_time;
    report.checked_at = v.checked_at();
    report.digest = Some(v.digest.to_string());
    report.chain = Some(v.chain.to_string());
    report.signer = v.signer.as_ref().map(|s| Signer {
        subject: s.subject.clone(),
        issuer: s.issuer.clone(),
        emails: s.emails.clone(),
        sha1: s.sha1_hex.clone(),
    });
    report.reasons.extend(v.problems());
}

/// Something with a header field at the start (after an mbox `From ` line, if any):
/// a message, however broken.
fn looks_like_message(raw: &[u8]) -> bool {
    let mut lines = raw.split(|b| *b == b'\n');
    let mut first_line = lines.next().unwrap_or_default();
    if first_line.starts_with(b"From ") {
        first_line = lines.next().unwrap_or_default();
    }
    let Some(colon) = first_line.iter().position(|b| *b == b':') else {
        return false;
    };
    colon > 0
        && first_line[..colon]
            .iter()
            .all(|b| b.is_ascii_graphic() && *b != b':')
}

/// Reads trust anchors from PEM files (one or more certificates each).
pub fn load_anchors(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, String> {
    let mut anchors = Vec::new();
    for path in paths {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let blocks = pem::parse_many(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let certs: Vec<Vec<u8>> = blocks
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.into_contents())
            .collect();
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
        anchors.extend(certs);
    }
    Ok(anchors)
}

/// The human-readable block for one report.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let verdict = match report.outcome {
        Outcome::Valid => "VALID",
        Outcome::Invalid => "INVALID",
        Outcome::Unreadable => "UNREADABLE",
    };
    out.push_str(&format!("{}: {verdict}\n", report.file));
    let mut line = |label: &str, value: &str| out.push_str(&format!("  {label:<15} {value}\n"));
    if let Some(kind) = &report.kind_name {
        line("kind:", kind);
    }
    if let Some(s) = &report.signer {
        let emails = if s.emails.is_empty() {
            String::new()
        } else {
            format!(" <{}>", s.emails.join(", "))
        };
        line("signer:", &format!("{}{emails}", s.subject));
        line("issuer:", &s.issuer);
    }
    if let Some(t) = report.signing_time {
        line("signing time:", &t.to_rfc3339());
    }
    if let Some(chain) = &report.chain {
        let at = report
            .checked_at
            .map(|t| format!(" (checked at {})", t.to_rfc3339()))
            .unwrap_or_default();
        line("chain:", &format!("{chain}{at}"));
    }
    if let Some(d) = &report.daticert {
        line("sender:", &d.sender);
        let recipients: Vec<String> = d
            .recipients
            .iter()
            .map(|r| format!("{} ({})", r.address, r.tipo))
            .collect();
        line("recipients:", &recipients.join(", "));
        line("identificativo:", &d.identificativo);
        if let Some(msgid) = &d.msgid {
            line("msgid:", msgid);
        }
        if let Some(c) = &d.consegna {
            line("consegna:", c);
        }
        let esteso = d
            .errore_esteso
            .as_ref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        line("errore:", &format!("{}{esteso}", d.errore));
    }
    for reason in &report.reasons {
        line("reason:", reason);
    }
    for warning in &report.warnings {
        line("warning:", warning);
    }
    out
}
