//! RFC 1847 `multipart/signed` framing: building our messages and splitting
//! real-world ones into the signed entity and the signature.
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};

use super::{Signer, SmimeError};

const PREAMBLE: &str = "This is an S/MIME signed message";

/// Builds a complete signed message (CRLF line endings).
///
/// `top_headers`: the RFC 5322 header lines without MIME-Version/Content-Type.
/// `entity`: the inner MIME entity (headers + body); bare LFs are turned into CRLF
/// before signing since verifiers canonicalize anyway.
pub fn build_signed_message(
    signer: &Signer,
    top_headers: &str,
    entity: &[u8],
    signing_time: DateTime<Utc>,
) -> Result<Vec<u8>, SmimeError> {
    build_signed_message_owned(signer, top_headers, entity.to_vec(), signing_time).map(|(m, _)| m)
}

/// [`build_signed_message`] in the entity's buffer, which it takes: the signed message
/// of a 30 MB entity costs no second 30 MB. Also the entity's offset in the result.
pub fn build_signed_message_owned(
    signer: &Signer,
    top_headers: &str,
    entity: Vec<u8>,
    signing_time: DateTime<Utc>,
) -> Result<(Vec<u8>, usize), SmimeError> {
    // Generated entities are CRLF already.
    let mut entity = if has_bare_lf(&entity) {
        canonicalize_crlf(&entity)
    } else {
        entity
    };
    let boundary = new_boundary(&entity)?;
    let signature = signer.sign_detached(&entity, signing_time)?;

    let mut head = canonicalize_crlf(top_headers.as_bytes());
    if !head.is_empty() && !head.ends_with(b"\r\n") {
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(
        format!(
            "MIME-Version: 1.0\r\n\
             Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n\
             \tmicalg=sha-256; boundary=\"{boundary}\"\r\n\
             \r\n\
             {PREAMBLE}\r\n\
             \r\n\
             --{boundary}\r\n"
        )
        .as_bytes(),
    );
    let offset = head.len();
    entity.splice(0..0, head);
    entity.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\n\
             Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\
             Content-Description: S/MIME Cryptographic Signature\r\n\
             \r\n"
        )
        .as_bytes(),
    );
    let b64 = STANDARD.encode(&signature);
    for line in b64.as_bytes().chunks(76) {
        entity.extend_from_slice(line);
        entity.extend_from_slice(b"\r\n");
    }
    entity.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok((entity, offset))
}

fn new_boundary(entity: &[u8]) -> Result<String, SmimeError> {
    let rng = SystemRandom::new();
    loop {
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes)
            .map_err(|_| SmimeError::Signing("random generator failure".into()))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        let boundary = format!("----{hex}");
        if !contains(entity, boundary.as_bytes()) {
            return Ok(boundary);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Bare LF → CRLF; existing CRLF pairs are kept.
/// Whether `data` has a LF not preceded by CR.
fn has_bare_lf(data: &[u8]) -> bool {
    data.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'))
}

pub fn canonicalize_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// The two halves of a `multipart/signed` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParts<'a> {
    /// The signed entity canonicalized to CRLF, as verification needs it (borrowed
    /// from the input when it is CRLF already, as it nearly always is).
    pub content: std::borrow::Cow<'a, [u8]>,
    /// The signed entity exactly as in the input (fallback for odd signers).
    pub raw_content: &'a [u8],
    /// The decoded signature part (CMS ContentInfo, DER or BER).
    pub signature_der: Vec<u8>,
    /// `micalg` parameter, lowercased, if present.
    pub micalg: Option<String>,
    /// `protocol` parameter, lowercased.
    pub protocol: String,
}

/// Splits a `multipart/signed` message (LF or CRLF) into signed entity and signature.
pub fn split_signed(raw: &[u8]) -> Result<SignedParts<'_>, SmimeError> {
    let (headers, body) = split_header_block(skip_mbox_from(raw));
    let ct = header_value(&headers, "content-type").ok_or(SmimeError::NotSigned)?;
    let (mime, params) = parse_content_type(&ct);
    if mime != "multipart/signed" {
        return Err(SmimeError::NotSigned);
    }
    let protocol = param(&params, "protocol")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if protocol != "application/pkcs7-signature" && protocol != "application/x-pkcs7-signature" {
        return Err(SmimeError::UnsupportedProtocol(protocol));
    }
    let boundary = param(&params, "boundary")
        .filter(|b| !b.is_empty())
        .ok_or(SmimeError::MissingBoundary)?;
    let micalg = param(&params, "micalg").map(|m| m.to_ascii_lowercase());

    let delims = delimiters(body, boundary.as_bytes());
    let first = delims
        .first()
        .filter(|d| !d.close)
        .ok_or(SmimeError::MissingContent)?;
    let second = delims.get(1).ok_or(SmimeError::MissingSignaturePart)?;
    if second.close {
        return Err(SmimeError::MissingSignaturePart);
    }
    let raw_content = &body[first.next..part_end(body, second.line).max(first.next)];
    let sig_end = delims.get(2).map_or(body.len(), |d| part_end(body, d.line));
    let sig_part = &body[second.next..sig_end.max(second.next)];

    let (sig_headers, sig_body) = split_header_block(sig_part);
    let sig_ct = header_value(&sig_headers, "content-type").unwrap_or_default();
    let (sig_mime, _) = parse_content_type(&sig_ct);
    if !sig_mime.ends_with("pkcs7-signature") {
        return Err(SmimeError::MissingSignaturePart);
    }
    let signature_der = decode_base64(sig_body)?;
    if signature_der.is_empty() {
        return Err(SmimeError::MissingSignaturePart);
    }
    Ok(SignedParts {
        content: if has_bare_lf(raw_content) {
            canonicalize_crlf(raw_content).into()
        } else {
            raw_content.into()
        },
        raw_content,
        signature_der,
        micalg,
        protocol,
    })
}

fn decode_base64(data: &[u8]) -> Result<Vec<u8>, SmimeError> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let clean: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    LENIENT
        .decode(clean)
        .map_err(|e| SmimeError::BadBase64(e.to_string()))
}

fn skip_mbox_from(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        if let Some(nl) = raw.iter().position(|&b| b == b'\n') {
            return &raw[nl + 1..];
        }
    }
    raw
}

/// Lines of `data` as (start, end without line break, start of next line).
fn lines(data: &[u8]) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= data.len() {
            return None;
        }
        let start = pos;
        let (end, next) = match data[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => (start + i, start + i + 1),
            None => (data.len(), data.len()),
        };
        pos = next;
        let end = if end > start && data[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        Some((start, end, next))
    })
}

/// Unfolded (name lowercased, value) header fields, and the body after the blank line.
fn split_header_block(data: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (start, end, next) in lines(data) {
        let line = &data[start..end];
        if line.is_empty() {
            return (fields, &data[next..]);
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = fields.last_mut() {
                last.1.push_str(&text);
            }
        } else if let Some((name, value)) = text.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    (fields, &data[data.len()..])
}

fn header_value(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// `type/subtype` lowercased and the parameters (names lowercased, values unquoted).
fn parse_content_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut pieces = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
            cur.push(c);
        } else if c == ';' && !quoted {
            pieces.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    pieces.push(cur);
    let mut iter = pieces.into_iter();
    let mime = iter.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = iter
        .filter_map(|p| {
            let (name, value) = p.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .map(|v| v.strip_suffix('"').unwrap_or(v))
                .unwrap_or(value);
            Some((name.trim().to_ascii_lowercase(), value.to_string()))
        })
        .collect();
    (mime, params)
}

fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

struct Delimiter {
    /// start of the `--boundary` line
    line: usize,
    /// start of the line after it
    next: usize,
    close: bool,
}

fn delimiters(body: &[u8], boundary: &[u8]) -> Vec<Delimiter> {
    let mut out = Vec::new();
    for (start, end, next) in lines(body) {
        let Some(rest) = body[start..end]
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        else {
            continue;
        };
        let close = rest.starts_with(b"--");
        if close || rest.iter().all(|&b| b == b' ' || b == b'\t') {
            out.push(Delimiter {
                line: start,
                next,
                close,
            });
            if close {
                break;
            }
        }
    }
    out
}

/// A part ends before the line break that precedes the next delimiter line (RFC 2046).
fn part_end(body: &[u8], delimiter_line: usize) -> usize {
    if body[..delimiter_line].ends_with(b"\r\n") {
        delimiter_line - 2
    } else if body[..delimiter_line].ends_with(b"\n") {
        delimiter_line - 1
    } else {
        delimiter_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smime::testutil::{fixture, ENTITY};
    use crate::smime::{verify_message, VerifyOptions};

    const TOP: &str = "From: posta-certificata@pec.test.example\r\nTo: a@b.example\r\nSubject: ACCETTAZIONE: prova\r\n";

    fn built() -> Vec<u8> {
        build_signed_message(&fixture().signer, TOP, ENTITY, Utc::now()).unwrap()
    }

    fn anchors() -> VerifyOptions {
        VerifyOptions {
            anchors: vec![fixture().ca.cert_der.clone()],
            at: None,
        }
    }

    fn replace(hay: &[u8], from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(hay.to_vec())
            .unwrap()
            .replacen(from, to, 1)
            .into_bytes()
    }

    #[test]
    fn canonicalize() {
        assert_eq!(
            canonicalize_crlf(b"a\nb\r\nc\r\n\n"),
            b"a\r\nb\r\nc\r\n\r\n"
        );
        assert_eq!(canonicalize_crlf(b""), b"");
        assert_eq!(canonicalize_crlf(b"\n"), b"\r\n");
    }

    #[test]
    fn built_message_shape() {
        let msg = built();
        let text = String::from_utf8(msg.clone()).unwrap();
        assert!(text.starts_with(TOP));
        assert!(text.contains("\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n\tmicalg=sha-256; boundary=\""));
        assert!(text.contains("\r\n\r\nThis is an S/MIME signed message\r\n"));
        assert!(text.contains("Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"));
        assert!(text.contains("Content-Disposition: attachment; filename=\"smime.p7s\"\r\n"));
        assert_eq!(canonicalize_crlf(&msg), msg, "CRLF only");
        assert!(text.lines().all(|l| l.len() <= 78), "short lines");
        let parts = split_signed(&msg).unwrap();
        assert_eq!(parts.content, ENTITY);
        assert_eq!(parts.raw_content, ENTITY);
        assert_eq!(parts.micalg.as_deref(), Some("sha-256"));
        assert_eq!(parts.protocol, "application/pkcs7-signature");
        assert!(text.ends_with("--\r\n"));
        let v = verify_message(&msg, &anchors()).unwrap();
        assert!(v.is_valid(), "{:?}", v.problems());
    }

    #[test]
    fn lf_entity_and_missing_final_crlf_in_headers() {
        let lf_entity = String::from_utf8(ENTITY.to_vec())
            .unwrap()
            .replace("\r\n", "\n");
        let msg = build_signed_message(
            &fixture().signer,
            "Subject: x",
            lf_entity.as_bytes(),
            Utc::now(),
        )
        .unwrap();
        assert!(msg.starts_with(b"Subject: x\r\nMIME-Version: 1.0\r\n"));
        assert_eq!(split_signed(&msg).unwrap().content, ENTITY);
        assert!(verify_message(&msg, &anchors()).unwrap().is_valid());
    }

    #[test]
    fn lf_files_verify() {
        let lf = String::from_utf8(built()).unwrap().replace("\r\n", "\n");
        let parts = split_signed(lf.as_bytes()).unwrap();
        assert_eq!(parts.content, ENTITY);
        assert_ne!(parts.raw_content, ENTITY);
        assert!(verify_message(lf.as_bytes(), &anchors())
            .unwrap()
            .is_valid());
    }

    #[test]
    fn signer_that_hashed_lf_bytes_is_accepted() {
        let lf_entity = String::from_utf8(ENTITY.to_vec())
            .unwrap()
            .replace("\r\n", "\n");
        let sig = fixture()
            .signer
            .sign_detached(lf_entity.as_bytes(), Utc::now())
            .unwrap();
        let msg = format!(
            "Subject: x\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=B\n\n--B\n{lf_entity}\n--B\nContent-Type: application/pkcs7-signature\nContent-Transfer-Encoding: base64\n\n{}\n--B--\n",
            STANDARD.encode(sig)
        );
        let v = verify_message(msg.as_bytes(), &anchors()).unwrap();
        assert!(v.is_valid(), "{:?}", v.problems());
    }

    #[test]
    fn lenient_headers() {
        let msg = built();
        let parts = split_signed(&msg).unwrap();
        let text = String::from_utf8(msg.clone()).unwrap();
        let boundary = text
            .split("boundary=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let header_start = text.find("Content-Type: multipart/signed").unwrap();
        let header_end = header_start + text[header_start..].find("\r\n\r\n").unwrap();
        let variants = [
            format!("content-type: Multipart/Signed;\r\n micalg=SHA1; boundary={boundary};\r\n\tprotocol=\"application/x-pkcs7-signature\""),
            format!("CONTENT-TYPE:multipart/signed;boundary=\"{boundary}\";protocol=application/pkcs7-signature"),
        ];
        for header in variants {
            let raw = format!("{}{}{}", &text[..header_start], header, &text[header_end..]);
            let p = split_signed(raw.as_bytes()).unwrap();
            assert_eq!(p.content, parts.content, "{header}");
            assert_eq!(p.signature_der, parts.signature_der);
        }
        let no_micalg = replace(&msg, "micalg=sha-256; ", "");
        let p = split_signed(&no_micalg).unwrap();
        assert_eq!(p.micalg, None);
        // mbox separator line and transport padding after a boundary
        let mut mbox = b"From someone Mon Mar  2 10:00:00 2026\n".to_vec();
        mbox.extend_from_slice(&replace(
            &msg,
            &format!("--{boundary}\r\nContent-Type: multipart/mixed"),
            &format!("--{boundary}  \r\nContent-Type: multipart/mixed"),
        ));
        assert_eq!(split_signed(&mbox).unwrap().content, ENTITY);
    }

    #[test]
    fn structural_errors() {
        let msg = built();
        let text = String::from_utf8(msg.clone()).unwrap();
        assert!(matches!(
            split_signed(b"Subject: x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"),
            Err(SmimeError::NotSigned)
        ));
        assert!(matches!(
            split_signed(b"Subject: x\r\n\r\nhi"),
            Err(SmimeError::NotSigned)
        ));
        assert!(matches!(split_signed(b""), Err(SmimeError::NotSigned)));
        let no_boundary = text.replacen("boundary=\"", "x-boundary=\"", 1);
        assert!(matches!(
            split_signed(no_boundary.as_bytes()),
            Err(SmimeError::MissingBoundary)
        ));
        let pgp = text.replacen(
            "application/pkcs7-signature\"",
            "application/pgp-signature\"",
            1,
        );
        assert!(matches!(
            split_signed(pgp.as_bytes()),
            Err(SmimeError::UnsupportedProtocol(_))
        ));
        // the signature part cut off entirely
        let boundary_at = text.rfind("\r\n--").unwrap();
        let second = text[..boundary_at].rfind("\r\n--").unwrap();
        let one_part = format!("{}\r\n", &text[..second]);
        assert!(matches!(
            split_signed(one_part.as_bytes()),
            Err(SmimeError::MissingSignaturePart)
        ));
        let bad_b64 = text.replacen("Content-Disposition: attachment; filename=\"smime.p7s\"\r\nContent-Description: S/MIME Cryptographic Signature\r\n\r\nMI", "Content-Disposition: attachment; filename=\"smime.p7s\"\r\nContent-Description: S/MIME Cryptographic Signature\r\n\r\n*I", 1);
        assert!(matches!(
            split_signed(bad_b64.as_bytes()),
            Err(SmimeError::BadBase64(_))
        ));
        let wrong_part = text.replacen(
            "Content-Type: application/pkcs7-signature",
            "Content-Type: text/plain",
            1,
        );
        assert!(matches!(
            split_signed(wrong_part.as_bytes()),
            Err(SmimeError::MissingSignaturePart)
        ));
        let header_only = &text[..text.find("\r\n\r\n").unwrap() + 4];
        assert!(matches!(
            split_signed(header_only.as_bytes()),
            Err(SmimeError::MissingContent)
        ));
    }

    #[test]
    fn no_panic_on_prefixes_and_corruptions() {
        let msg = built();
        for cut in 0..msg.len() {
            let _ = verify_message(&msg[..cut], &anchors());
        }
        for i in (0..msg.len()).step_by(3) {
            let mut m = msg.clone();
            m[i] ^= 0x55;
            if let Ok(v) = verify_message(&m, &anchors()) {
                // whatever changed, a flipped byte never yields a valid message
                // unless it sits outside the signed entity and signature
                let _ = v.problems();
            }
        }
        let parts = split_signed(&msg).unwrap();
        let entity_at = msg.windows(ENTITY.len()).position(|w| w == ENTITY).unwrap();
        for i in (entity_at..entity_at + ENTITY.len()).step_by(7) {
            let mut m = msg.clone();
            m[i] ^= 0x01;
            let v = verify_message(&m, &anchors());
            assert!(
                !v.as_ref().map(|v| v.is_valid()).unwrap_or(false),
                "byte {i} of the entity changed but still valid"
            );
        }
        assert!(!parts.signature_der.is_empty());
    }
}
