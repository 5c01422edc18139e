//! The providers' index (RFC 6109 §5.6) as LDIF (RFC 2849): this provider's entry out,
//! other providers' entries in, plain or signed (`.p7m`, CMS SignedData with the LDIF
//! inside).
//!
//! A secondary environment (`providerUnit=<unit>,providerName=<name>,o=postacert`) is
//! an entry of its own named `<name>/<unit>`; writing splits a name at its last `/`
//! the same way. Domains are kept in lower case; hashes are recomputed from the
//! certificates, in certificate order.
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use der::Decode;

use crate::smime::verify::verify_attached;
use crate::smime::{SignerSummary, SmimeError, VerifyOptions};
use crate::store::ProviderEntry;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("LDIF line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("index entry {dn}: missing {attribute}")]
    Missing { dn: String, attribute: &'static str },
    #[error("index entry {dn}: {reason}")]
    Invalid { dn: String, reason: String },
    #[error("index entry {dn}: providerCertificateHash values do not match the SHA-1 of the providerCertificate values")]
    HashMismatch { dn: String },
    #[error("signed index: {0}")]
    Smime(#[from] SmimeError),
    #[error("signed index: {0}")]
    Encoding(String),
    #[error("signed index: the signature is not valid: {0}")]
    BadSignature(String),
}

/// Base64 as found in the wild: padding optional.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const B64: GeneralPurpose = base64::engine::general_purpose::STANDARD;

const WIDTH: usize = 76;

/// Lower-case hex SHA-1 of a DER certificate (providerCertificateHash).
pub fn certificate_hash(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// This provider's entry, from its configuration and signing certificate.
pub fn self_entry(
    provider_name: &str,
    domains: &[String],
    mail_receipt: &str,
    signing_cert_der: &[u8],
) -> ProviderEntry {
    ProviderEntry {
        name: provider_name.to_string(),
        domains: domains.iter().map(|d| d.trim().to_lowercase()).collect(),
        mail_receipt: mail_receipt.to_string(),
        certificates: vec![signing_cert_der.to_vec()],
        certificate_hashes: vec![certificate_hash(signing_cert_der)],
    }
}

/// A whole LDIF file: `version: 1` and the entries, separated by blank lines.
pub fn entries_to_ldif(entries: &[ProviderEntry]) -> String {
    let mut out = String::from("version: 1\n");
    for e in entries {
        out.push('\n');
        out.push_str(&entry_to_ldif(e));
    }
    out
}

/// One RFC 6109 §5.6 entry as an LDIF record (LF line endings, no `version:` line).
pub fn entry_to_ldif(entry: &ProviderEntry) -> String {
    let (name, unit) = match entry.name.rsplit_once('/') {
        Some((n, u)) if !n.is_empty() && !u.is_empty() => (n, Some(u)),
        _ => (entry.name.as_str(), None),
    };
    let mut dn = format!("providerName={},o=postacert", escape_dn(name));
    if let Some(u) = unit {
        dn = format!("providerUnit={},{dn}", escape_dn(u));
    }
    let mut out = String::new();
    push_value(&mut out, "dn", dn.as_bytes());
    push_value(&mut out, "objectClass", b"top");
    push_value(&mut out, "objectClass", b"provider");
    push_value(&mut out, "providerName", name.as_bytes());
    if let Some(u) = unit {
        push_value(&mut out, "providerUnit", u.as_bytes());
    }
    for d in &entry.domains {
        push_value(&mut out, "managedDomains", d.as_bytes());
    }
    push_value(&mut out, "mailReceipt", entry.mail_receipt.as_bytes());
    for c in &entry.certificates {
        push_line(
            &mut out,
            &format!("providerCertificate;binary:: {}", B64.encode(c)),
        );
    }
    for c in &entry.certificates {
        push_value(
            &mut out,
            "providerCertificateHash",
            certificate_hash(c).as_bytes(),
        );
    }
    out
}

/// RFC 2849 SAFE-STRING, and no trailing space (which readers may drop).
fn is_safe(v: &[u8]) -> bool {
    let safe = |b: &u8| !matches!(*b, 0 | b'\n' | b'\r') && *b < 0x80;
    match v.first() {
        None => true,
        Some(first) => {
            !matches!(*first, b' ' | b':' | b'<') && v.iter().all(safe) && v.last() != Some(&b' ')
        }
    }
}

fn push_value(out: &mut String, attr: &str, v: &[u8]) {
    if is_safe(v) {
        // safe means ASCII: the conversion is lossless
        push_line(out, &format!("{attr}: {}", String::from_utf8_lossy(v)));
    } else {
        push_line(out, &format!("{attr}:: {}", B64.encode(v)));
    }
}

/// Folds at 76 columns; continuation lines start with one space (RFC 2849 note 2).
fn push_line(out: &mut String, line: &str) {
    // lines are ASCII (non-ASCII values go base64), so byte slicing is safe
    let mut rest = line;
    let mut width = WIDTH;
    loop {
        if rest.len() <= width {
            out.push_str(rest);
            out.push('\n');
            return;
        }
        let (head, tail) = rest.split_at(width);
        out.push_str(head);
        out.push_str("\n ");
        rest = tail;
        width = WIDTH - 1;
    }
}

/// RFC 4514 §2.4 escaping of an attribute value inside a DN.
fn escape_dn(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c => out.push(c),
        }
    }
    out
}

struct Attr {
    /// Lower case, options removed.
    name: String,
    value: Vec<u8>,
    /// Written as `::` (then taken exactly; plain values are trimmed).
    base64: bool,
    line: usize,
}

struct Record {
    dn: String,
    attrs: Vec<Attr>,
}

/// Reads providers' index entries from LDIF; entries that are not `provider` objects
/// (the `o=postacert` root, ...) are skipped.
pub fn parse_ldif(text: &str) -> Result<Vec<ProviderEntry>, IndexError> {
    let mut out = Vec::new();
    for record in records(text)? {
        if let Some(entry) = provider_entry(&record)? {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Logical (unfolded) lines with their first physical line number, grouped in records.
fn logical_records(text: &str) -> Result<Vec<Vec<(usize, String)>>, IndexError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut current: Vec<(usize, String)> = Vec::new();
    // a comment can be folded too: its continuation lines are dropped with it
    let mut in_comment = false;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let number = i + 1;
        if let Some(cont) = line.strip_prefix(' ') {
            if in_comment {
                continue;
            }
            match current.last_mut() {
                Some((_, l)) => l.push_str(cont),
                None if cont.trim().is_empty() => {}
                None => {
                    return Err(IndexError::Syntax {
                        line: number,
                        reason: "continuation line with nothing to continue".into(),
                    })
                }
            }
        } else if line.is_empty() {
            in_comment = false;
            if !current.is_empty() {
                records.push(std::mem::take(&mut current));
            }
        } else if line.starts_with('#') {
            in_comment = true;
        } else {
            in_comment = false;
            current.push((number, line.to_string()));
        }
    }
    if !current.is_empty() {
        records.push(current);
    }
    Ok(records)
}

fn records(text: &str) -> Result<Vec<Record>, IndexError> {
    let mut out = Vec::new();
    for (i, mut lines) in logical_records(text)?.into_iter().enumerate() {
        if i == 0 {
            if let Some((line, l)) = lines.first() {
                let (name, value) = l.split_once(':').unwrap_or((l, ""));
                if name.trim().eq_ignore_ascii_case("version") {
                    if value.trim() != "1" {
                        return Err(IndexError::Syntax {
                            line: *line,
                            reason: format!("unsupported LDIF version {:?}", value.trim()),
                        });
                    }
                    lines.remove(0);
                }
            }
        }
        let mut attrs = Vec::new();
        for (line, l) in &lines {
            attrs.push(attr_line(*line, l)?);
        }
        let Some(first) = attrs.first() else {
            continue;
        };
        if first.name != "dn" {
            return Err(IndexError::Syntax {
                line: first.line,
                reason: "a record must start with dn:".into(),
            });
        }
        let dn = String::from_utf8(first.value.clone()).map_err(|_| IndexError::Syntax {
            line: first.line,
            reason: "the dn is not UTF-8".into(),
        })?;
        let dn = if first.base64 {
            dn
        } else {
            dn.trim().to_string()
        };
        attrs.remove(0);
        if let Some(ct) = attrs.iter().find(|a| a.name == "changetype") {
            if !ct.value.trim_ascii().eq_ignore_ascii_case(b"add") {
                return Err(IndexError::Syntax {
                    line: ct.line,
                    reason: format!("{dn}: only content records and changetype add are supported"),
                });
            }
        }
        out.push(Record { dn, attrs });
    }
    Ok(out)
}

fn attr_line(line: usize, l: &str) -> Result<Attr, IndexError> {
    let syntax = |reason: &str| IndexError::Syntax {
        line,
        reason: reason.to_string(),
    };
    let (desc, rest) = l
        .split_once(':')
        .ok_or_else(|| syntax("expected attribute: value"))?;
    let name = desc.split(';').next().unwrap_or("").trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(syntax("invalid attribute name"));
    }
    let name = name.to_ascii_lowercase();
    if let Some(b64) = rest.strip_prefix(':') {
        let compact: String = b64.split_ascii_whitespace().collect();
        let value = LENIENT
            .decode(compact)
            .map_err(|e| syntax(&format!("invalid base64 value of {name}: {e}")))?;
        Ok(Attr {
            name,
            value,
            base64: true,
            line,
        })
    } else if rest.starts_with('<') {
        Err(syntax("URL values (:<) are not supported"))
    } else {
        Ok(Attr {
            name,
            value: rest.trim().as_bytes().to_vec(),
            base64: false,
            line,
        })
    }
}

fn provider_entry(r: &Record) -> Result<Option<ProviderEntry>, IndexError> {
    let dn = &r.dn;
    let values = |name: &'static str| r.attrs.iter().filter(move |a| a.name == name);
    let invalid = |reason: String| IndexError::Invalid {
        dn: dn.clone(),
        reason,
    };
    let text = |a: &Attr| -> Result<String, IndexError> {
        String::from_utf8(a.value.clone())
            .map_err(|_| invalid(format!("a value of {} is not UTF-8", a.name)))
    };
    let is_provider =
        values("objectclass").any(|a| a.value.trim_ascii().eq_ignore_ascii_case(b"provider"));
    if !is_provider {
        return Ok(None);
    }
    let single = |name: &'static str, label: &'static str| -> Result<Option<String>, IndexError> {
        let mut it = values(name);
        let first = it.next().map(text).transpose()?;
        if it.next().is_some() {
            return Err(invalid(format!("{label} has more than one value")));
        }
        Ok(first)
    };
    let missing = |attribute: &'static str| IndexError::Missing {
        dn: dn.clone(),
        attribute,
    };
    let name = single("providername", "providerName")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| missing("providerName"))?;
    let unit = single("providerunit", "providerUnit")?.filter(|u| !u.is_empty());
    let mail_receipt = single("mailreceipt", "mailReceipt")?
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| missing("mailReceipt"))?;
    let domains = values("manageddomains")
        .map(|a| text(a).map(|d| d.trim().to_lowercase()))
        .filter(|d| !matches!(d, Ok(d) if d.is_empty()))
        .collect::<Result<Vec<_>, _>>()?;
    if domains.is_empty() {
        return Err(missing("managedDomains"));
    }
    let certificates: Vec<Vec<u8>> = values("providercertificate")
        .map(|a| a.value.clone())
        .collect();
    if certificates.is_empty() {
        return Err(missing("providerCertificate"));
    }
    for (i, c) in certificates.iter().enumerate() {
        if x509_cert::Certificate::from_der(c).is_err() {
            return Err(invalid(format!(
                "providerCertificate {} is not a DER X.509 certificate",
                i + 1
            )));
        }
    }
    let computed: Vec<String> = certificates.iter().map(|c| certificate_hash(c)).collect();
    let mut given = values("providercertificatehash")
        .map(|a| {
            text(a).map(|h| {
                h.chars()
                    .filter(|c| !c.is_whitespace() && *c != ':')
                    .collect::<String>()
                    .to_lowercase()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !given.is_empty() {
        let mut want = computed.clone();
        want.sort();
        want.dedup();
        given.sort();
        given.dedup();
        if given != want {
            return Err(IndexError::HashMismatch { dn: dn.clone() });
        }
    }
    Ok(Some(ProviderEntry {
        name: match unit {
            Some(u) => format!("{name}/{u}"),
            None => name,
        },
        domains,
        mail_receipt,
        certificates,
        certificate_hashes: computed,
    }))
}

/// Reads a signed index (`.p7m`: CMS SignedData with the LDIF inside; DER, PEM, or
/// base64 with or without MIME headers) whose signer chains to one of `anchors` (DER).
/// Returns the entries and who signed them; an invalid signature is an error.
pub fn parse_signed_ldif(
    der_or_pem: &[u8],
    anchors: &[Vec<u8>],
) -> Result<(Vec<ProviderEntry>, SignerSummary), IndexError> {
    let der = unwrap_p7m(der_or_pem)?;
    let opts = VerifyOptions {
        anchors: anchors.to_vec(),
        at: None,
    };
    let (content, v) = verify_attached(&der, &opts)?;
    if !v.is_valid() {
        return Err(IndexError::BadSignature(v.problems().join("; ")));
    }
    let signer = v
        .signer
        .ok_or_else(|| IndexError::BadSignature("no signer certificate".into()))?;
    let text = String::from_utf8(content)
        .map_err(|_| IndexError::Encoding("the signed content is not UTF-8 text".into()))?;
    Ok((parse_ldif(&text)?, signer))
}

/// The DER of a `.p7m` given as DER, PEM, bare base64 or an S/MIME entity.
fn unwrap_p7m(data: &[u8]) -> Result<Vec<u8>, IndexError> {
    let trimmed = data.trim_ascii_start();
    if trimmed.first() == Some(&0x30) {
        return Ok(data.to_vec());
    }
    let bad = |why: String| IndexError::Encoding(format!("not a DER, PEM or base64 .p7m: {why}"));
    if trimmed.starts_with(b"-----BEGIN") {
        return pem::parse(trimmed)
            .map(|p| p.into_contents())
            .map_err(|e| bad(e.to_string()));
    }
    let text = std::str::from_utf8(trimmed).map_err(|_| bad("binary, but not DER".into()))?;
    // an S/MIME entity: the base64 body follows the header block
    let body = match text
        .split_once("\n\n")
        .or_else(|| text.split_once("\r\n\r\n"))
    {
        Some((head, body)) if head.to_ascii_lowercase().contains("content-type:") => body,
        _ => text,
    };
    let compact: String = body.split_ascii_whitespace().collect();
    LENIENT.decode(compact).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_and_safe_values() {
        let mut out = String::new();
        push_line(&mut out, &"x".repeat(76));
        assert_eq!(out, format!("{}\n", "x".repeat(76)));
        let mut out = String::new();
        push_line(&mut out, &"y".repeat(200));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.len() <= 76));
        assert_eq!(lines.concat().replace(' ', ""), "y".repeat(200));
        for (v, safe) in [
            (&b"pec.example.it"[..], true),
            (b"", true),
            (b" lead", false),
            (b":colon", false),
            (b"<url", false),
            (b"trail ", false),
            (b"caf\xc3\xa8", false),
            (b"a\nb", false),
            (b"mid dle:ok<", true),
        ] {
            assert_eq!(is_safe(v), safe, "{v:?}");
        }
    }

    #[test]
    fn dn_escaping() {
        assert_eq!(escape_dn("Rossi, Bianchi & C."), "Rossi\\, Bianchi & C.");
        assert_eq!(escape_dn("#1 + 2 "), "\\#1 \\+ 2\\ ");
        assert_eq!(escape_dn(" a;b<c>\"d\\"), "\\ a\\;b\\<c\\>\\\"d\\\\");
        assert_eq!(escape_dn("Città"), "Città");
    }

    #[test]
    fn p7m_encodings() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        let b64 = B64.encode(&der);
        assert_eq!(unwrap_p7m(&der).unwrap(), der);
        assert_eq!(unwrap_p7m(b64.as_bytes()).unwrap(), der);
        let pem = format!("-----BEGIN PKCS7-----\n{b64}\n-----END PKCS7-----\n");
        assert_eq!(unwrap_p7m(pem.as_bytes()).unwrap(), der);
        let mime = format!(
            "MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\n{b64}\r\n"
        );
        assert_eq!(unwrap_p7m(mime.as_bytes()).unwrap(), der);
        assert!(unwrap_p7m(b"\xff\xfe").is_err());
        assert!(unwrap_p7m(b"not base64 at all!").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            " leading continuation",
            "providerName: no dn\n",
            "dn: x\nnocolon\n",
            "dn: x\nbad name!: v\n",
            "dn:: !!!\n",
            "dn: x\nobjectClass:< file:///etc/passwd\n",
            "version: 2\n\ndn: x\n",
            "dn: x\nchangetype: delete\n",
        ] {
            assert!(
                matches!(parse_ldif(bad), Err(IndexError::Syntax { .. })),
                "{bad:?}"
            );
        }
        assert!(parse_ldif("").unwrap().is_empty());
        assert!(parse_ldif("version: 1\n# only a comment\n")
            .unwrap()
            .is_empty());
    }
}
