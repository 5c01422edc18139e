//! The ricevuta breve's hash replacement (pec-rules §7, RFC 6109 §3.3.2.2): the original
//! keeps its MIME structure, and every attachment becomes a text/plain part holding the
//! SHA-1 of the attachment as transmitted, named `<filename>.hash`.

use mail_parser::{MimeHeaders, PartType};
use ring::digest;

use super::mime::{crlf_bytes, hex};

/// The original with its attachments replaced by their hashes, or `None` when the
/// content is opaque (application/pkcs7-mime): the breve receipt then carries the
/// original whole, as the rules say.
pub fn hash_attachments(original: &[u8]) -> Option<Vec<u8>> {
    let raw = crlf_bytes(original);
    let message = super::parse::parse_message(&raw[..])?;
    let root = message.parts.first()?;
    if is_opaque_smime(root) {
        return None;
    }
    let mut replacements: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    collect(&message, 0, &raw, &mut replacements);
    replacements.sort_by_key(|r| r.0);
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    for (start, end, bytes) in replacements {
        if start < at {
            continue;
        }
        out.extend_from_slice(&raw[at..start]);
        out.extend_from_slice(&bytes);
        at = end;
    }
    out.extend_from_slice(&raw[at..]);
    Some(out)
}

fn collect(
    message: &mail_parser::Message<'_>,
    id: usize,
    raw: &[u8],
    out: &mut Vec<(usize, usize, Vec<u8>)>,
) {
    let Some(part) = message.parts.get(id) else {
        return;
    };
    match &part.body {
        PartType::Multipart(children) => {
            let signed = part
                .content_type()
                .is_some_and(|ct| ct.c_subtype.as_deref() == Some("signed"));
            // A user's own S/MIME signature: hash inside the signed part, leave the
            // signature itself alone (it will no longer verify, as the rules accept).
            let children: &[u32] = if signed && !children.is_empty() {
                &children[..1]
            } else {
                children
            };
            for child in children {
                collect(message, *child as usize, raw, out);
            }
        }
        _ if id == 0 => {}
        PartType::Message(_) => out.push(replacement(part, raw, "postacert.eml")),
        _ => {
            if attachment_name(part).is_some() {
                out.push(replacement(part, raw, "allegato"));
            }
        }
    }
}

fn attachment_name(part: &mail_parser::MessagePart<'_>) -> Option<String> {
    part.content_disposition()
        .and_then(|cd| cd.attribute("filename"))
        .or_else(|| part.content_type().and_then(|ct| ct.attribute("name")))
        .map(str::to_string)
}

fn is_opaque_smime(part: &mail_parser::MessagePart<'_>) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.c_type.eq_ignore_ascii_case("application")
            && ct.c_subtype.as_deref().is_some_and(|s| {
                s.eq_ignore_ascii_case("pkcs7-mime") || s.eq_ignore_ascii_case("x-pkcs7-mime")
            })
    })
}

fn replacement(
    part: &mail_parser::MessagePart<'_>,
    raw: &[u8],
    default_name: &str,
) -> (usize, usize, Vec<u8>) {
    let (start, body, end) = (
        part.offset_header as usize,
        part.offset_body as usize,
        part.offset_end as usize,
    );
    let transmitted = raw.get(body..end).unwrap_or_default();
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, transmitted);
    let name = attachment_name(part).unwrap_or_else(|| default_name.to_string());
    let name = name.replace(['"', '\\', '\r', '\n'], "_");
    let bytes = format!(
        "Content-Type: text/plain; charset=\"us-ascii\"; name=\"{name}.hash\"\r\n\
         Content-Disposition: attachment; filename=\"{name}.hash\"\r\n\
         Content-Transfer-Encoding: 7bit\r\n\r\n{}",
        hex(sha1.as_ref())
    )
    .into_bytes();
    (start, end, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &[u8] = b"From: a@pec.example\r\nTo: b@pec.other\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nciao\r\n--XX\r\nContent-Type: application/pdf; name=\"fattura.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y\r\n\r\ninner\r\n--XX--\r\n";

    #[test]
    fn attachments_become_sha1_of_their_transmitted_form() {
        let out = String::from_utf8(hash_attachments(ORIGINAL).unwrap()).unwrap();
        // sha1("QUJD"), computed independently with `printf QUJD | sha1sum`.
        assert!(out.contains(
            "filename=\"fattura.pdf.hash\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\nb7eceac98410d063105b40aaeea98ae29db56953\r\n--XX"
        ));
        assert!(!out.contains("QUJD"));
        assert!(!out.contains("inner"));
        assert!(out.contains("postacert.eml.hash"));
        assert!(out.contains("ciao"), "text parts stay");
        assert!(out.starts_with("From: a@pec.example\r\n"));
    }

    #[test]
    fn opaque_smime_is_left_to_the_completa_form() {
        let opaque = b"From: a@b\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n\r\nAAAA\r\n";
        assert!(hash_attachments(opaque).is_none());
    }

    #[test]
    fn a_user_signature_part_is_left_alone() {
        let signed = b"From: a@b\r\nContent-Type: multipart/signed; boundary=\"S\"; protocol=\"application/pkcs7-signature\"\r\n\r\n--S\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n--M\r\nContent-Type: text/plain\r\n\r\nt\r\n--M\r\nContent-Type: image/png; name=\"x.png\"\r\n\r\nPNGDATA\r\n--M--\r\n\r\n--S\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\r\nSIGDATA\r\n--S--\r\n";
        let out = String::from_utf8(hash_attachments(signed).unwrap()).unwrap();
        assert!(out.contains("x.png.hash"));
        assert!(!out.contains("PNGDATA"));
        assert!(out.contains("SIGDATA"));
        assert!(!out.contains("smime.p7s.hash"));
    }
}
