//! The MIME shapes of provider-generated messages (pec-rules §2.1), written with CRLF
//! line endings so the bytes are exactly what is signed and sent.
//!
//! Boundaries are derived from the content (no randomness: the model is pure), and
//! checked not to occur in it.

use base64::Engine;
use ring::digest;

const CRLF: &str = "\r\n";

/// One MIME entity: its headers and its encoded body.
#[derive(Debug, Clone)]
pub struct Part {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Part {
    /// Human text in ISO-8859-1, quoted-printable, as real providers send it.
    pub fn text_latin1(text: &str) -> Self {
        Self::latin1("text/plain", text)
    }

    /// The HTML alternative: same facts, no external resources, no scripts.
    pub fn html_latin1(html: &str) -> Self {
        Self::latin1("text/html", html)
    }

    fn latin1(media: &str, text: &str) -> Self {
        let bytes = to_latin1(&crlf_text(text));
        let mut body = quoted_printable::encode(&bytes);
        body.extend_from_slice(CRLF.as_bytes());
        Self {
            headers: vec![
                (
                    "Content-Type".into(),
                    format!("{media}; charset=\"iso-8859-1\""),
                ),
                ("Content-Disposition".into(), "inline".into()),
                (
                    "Content-Transfer-Encoding".into(),
                    "quoted-printable".into(),
                ),
            ],
            body,
        }
    }

    /// `daticert.xml`: application/xml, base64, inline (the layout every provider uses).
    pub fn daticert(xml: &str) -> Self {
        Self {
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/xml; name=\"daticert.xml\"".into(),
                ),
                (
                    "Content-Disposition".into(),
                    "inline; filename=\"daticert.xml\"".into(),
                ),
                ("Content-Transfer-Encoding".into(), "base64".into()),
            ],
            body: base64_lines(xml.as_bytes()),
        }
    }

    /// A whole message attached as `message/rfc822`, bytes unchanged but for CRLF line ends.
    pub fn rfc822(name: &str, message: &[u8]) -> Self {
        let body = crlf_bytes(message);
        let cte = if body.is_ascii() { "7bit" } else { "8bit" };
        Self {
            headers: vec![
                (
                    "Content-Type".into(),
                    format!("message/rfc822; name=\"{name}\""),
                ),
                (
                    "Content-Disposition".into(),
                    format!("inline; filename=\"{name}\""),
                ),
                ("Content-Transfer-Encoding".into(), cte.into()),
            ],
            body,
        }
    }

    /// `message/rfc822` like [`Part::rfc822`], taking the message's buffer: a 30 MB
    /// original is not copied (unless its line ends need fixing).
    pub fn rfc822_owned(name: &str, message: Vec<u8>) -> Self {
        let mut part = Self::rfc822(name, b"");
        let body = crlf_owned(message);
        if !body.is_ascii() {
            part.headers[2].1 = "8bit".into();
        }
        part.body = body;
        part
    }

    fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in &self.headers {
            out.extend_from_slice(format_header(name, value).as_bytes());
        }
        out.extend_from_slice(CRLF.as_bytes());
        out
    }

    /// The same bytes as `multipart(subtype, parts).to_bytes()`, built in the buffer of
    /// the last part (the enclosed message): no copy of it. Also the range where that
    /// last part's body sits in the result.
    pub fn multipart_bytes_owned(
        subtype: &str,
        mut parts: Vec<Part>,
    ) -> (Vec<u8>, std::ops::Range<usize>) {
        let Some(last) = parts.pop() else {
            return (Self::multipart(subtype, parts).to_bytes(), 0..0);
        };
        let heads: Vec<Vec<u8>> = parts.iter().map(Part::header_bytes).collect();
        let last_head = last.header_bytes();
        // the boundary of `multipart`, from the same bytes, without joining them
        let mut ctx = digest::Context::new(&digest::SHA256);
        for (head, part) in heads.iter().zip(&parts) {
            ctx.update(head);
            ctx.update(&part.body);
        }
        ctx.update(&last_head);
        ctx.update(&last.body);
        let seed = ctx.finish();
        let hex = hex(&seed.as_ref()[..12]);
        let boundary = (0u32..)
            .map(|n| format!("----=_pecbox_{hex}_{n}"))
            .find(|b| {
                let b = b.as_bytes();
                let in_part = |head: &[u8], body: &[u8]| {
                    // a match may straddle the head and the body
                    let seam = head.len().saturating_sub(b.len());
                    let mut joint = head[seam..].to_vec();
                    joint.extend_from_slice(&body[..body.len().min(b.len())]);
                    contains(head, b) || contains(body, b) || contains(&joint, b)
                };
                !heads.iter().zip(&parts).any(|(h, p)| in_part(h, &p.body))
                    && !in_part(&last_head, &last.body)
            })
            .unwrap_or_default();
        let mut header = Vec::new();
        header.extend_from_slice(
            format_header(
                "Content-Type",
                &format!("multipart/{subtype}; boundary=\"{boundary}\""),
            )
            .as_bytes(),
        );
        header.extend_from_slice(CRLF.as_bytes());
        header.extend_from_slice(b"This is a multi-part message in MIME format.\r\n");
        for (head, part) in heads.iter().zip(&parts) {
            header.extend_from_slice(format!("{CRLF}--{boundary}{CRLF}").as_bytes());
            header.extend_from_slice(head);
            header.extend_from_slice(&part.body);
        }
        header.extend_from_slice(format!("{CRLF}--{boundary}{CRLF}").as_bytes());
        header.extend_from_slice(&last_head);
        let mut body = last.body;
        let start = header.len();
        let range = start..start + body.len();
        body.splice(0..0, header);
        body.extend_from_slice(format!("{CRLF}--{boundary}--{CRLF}").as_bytes());
        (body, range)
    }

    pub fn multipart(subtype: &str, parts: Vec<Part>) -> Self {
        let encoded: Vec<Vec<u8>> = parts.iter().map(Part::to_bytes).collect();
        let boundary = boundary_for(&encoded);
        let mut body = Vec::new();
        body.extend_from_slice(b"This is a multi-part message in MIME format.\r\n");
        for part in &encoded {
            body.extend_from_slice(format!("{CRLF}--{boundary}{CRLF}").as_bytes());
            body.extend_from_slice(part);
        }
        body.extend_from_slice(format!("{CRLF}--{boundary}--{CRLF}").as_bytes());
        Self {
            headers: vec![(
                "Content-Type".into(),
                format!("multipart/{subtype}; boundary=\"{boundary}\""),
            )],
            body,
        }
    }

    /// The entity: headers, blank line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        for (name, value) in &self.headers {
            out.extend_from_slice(format_header(name, value).as_bytes());
        }
        out.extend_from_slice(CRLF.as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

fn boundary_for(parts: &[Vec<u8>]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let seed = ctx.finish();
    let hex = hex(&seed.as_ref()[..12]);
    (0u32..)
        .map(|n| format!("----=_pecbox_{hex}_{n}"))
        .find(|b| !parts.iter().any(|p| contains(p, b.as_bytes())))
        .unwrap_or_default()
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One header field, folded at spaces to stay under 78 characters where possible.
/// A value that is already folded (copied from an original) is written as it is.
pub fn format_header(name: &str, value: &str) -> String {
    if value.contains("\r\n") {
        return format!("{name}: {value}\r\n");
    }
    let mut out = String::with_capacity(name.len() + value.len() + 8);
    out.push_str(name);
    out.push(':');
    let mut line_len = name.len() + 1;
    for (i, word) in value.split(' ').enumerate() {
        let needed = word.len() + 1;
        if i > 0 && line_len + needed > 78 {
            out.push_str(CRLF);
            line_len = 0;
        }
        out.push(' ');
        out.push_str(word);
        line_len += needed;
    }
    out.push_str(CRLF);
    out
}

/// RFC 2047 encoded-words (UTF-8, base64) for unstructured text that is not plain ASCII.
pub fn encode_unstructured(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if clean.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) && !clean.contains("=?") {
        return clean;
    }
    // 45 bytes of UTF-8 make a 60-character encoded word, inside the 75 limit.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in clean.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `"display name" <address>` mailbox; the name is quoted, escaped or encoded.
pub fn mailbox(display_name: &str, address: &str) -> String {
    let name = encode_unstructured(display_name);
    if name.starts_with("=?") {
        format!("{name} <{address}>")
    } else {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\" <{address}>")
    }
}

/// ISO-8859-1 bytes; characters outside it become `?` (the HTML part keeps them as references).
pub fn to_latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// Minimal HTML escaping; characters outside ISO-8859-1 become numeric references.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c if u32::from(c) > 0xFF => out.push_str(&format!("&#x{:X};", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn crlf_text(text: &str) -> String {
    String::from_utf8(crlf_bytes(text.as_bytes())).unwrap_or_default()
}

/// Normalises line ends to CRLF (bare LF and bare CR alike).
/// [`crlf_bytes`] taking the buffer: unchanged (no copy) when its line ends are CRLF.
pub fn crlf_owned(input: Vec<u8>) -> Vec<u8> {
    let canonical = input.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => input.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && input[i - 1] == b'\r',
        _ => true,
    });
    if canonical {
        input
    } else {
        crlf_bytes(&input)
    }
}

pub fn crlf_bytes(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if input.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn base64_lines(data: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for line in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_text_is_quoted_printable_with_crlf() {
        let part = Part::text_latin1("è stato accettato\nriga due");
        let bytes = String::from_utf8(part.to_bytes()).unwrap();
        assert!(bytes.contains("charset=\"iso-8859-1\""));
        assert!(bytes.contains("=E8 stato accettato\r\nriga due"));
    }

    #[test]
    fn boundary_never_occurs_in_the_parts() {
        let inner = Part::text_latin1("x").to_bytes();
        let outer = Part::multipart("mixed", vec![Part::rfc822("postacert.eml", &inner)]);
        let bytes = outer.to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let boundary = text
            .split("boundary=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(text.matches(boundary).count(), 3);
    }

    #[test]
    fn encoded_words_only_when_needed() {
        assert_eq!(encode_unstructured("Fattura 12"), "Fattura 12");
        let e = encode_unstructured("Perché sì");
        assert!(e.starts_with("=?UTF-8?B?"), "{e}");
        let long = "à".repeat(100);
        assert!(encode_unstructured(&long).split(' ').all(|w| w.len() <= 75));
        assert_eq!(encode_unstructured("a\r\nBcc: x"), "a  Bcc: x");
    }

    #[test]
    fn crlf_normalisation() {
        assert_eq!(crlf_bytes(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd");
    }
}
