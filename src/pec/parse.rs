//! Every full parse of a message goes through [`parse_message`]: mail-parser 0.11 behind
//! a guard for the one input shape known to break it.
//!
//! mail-parser restores a single nesting level when a `message/rfc822` part ends at a
//! multipart boundary; when that part's content is itself directly a `message/rfc822`
//! entity and the enclosing multipart's closing boundary follows, it looks up a part in
//! the wrong message and trips `debug_assert!(false, "Invalid part ID, could not find
//! multipart.")` (parsers/message.rs:485). Release builds skip the assert and return a
//! mis-nested tree; debug builds (tests, fuzzing) panic. Found by the `verify` fuzz
//! target. Such a message is refused here in every build, as unparseable.
use mail_parser::{Message, MessageParser};

/// `MessageParser::default().parse(raw)`, or None when the message has a directly
/// nested `message/rfc822` (see the module text), is not a message at all, or makes
/// mail-parser panic: fuzzing reached its assert through more shapes than the one
/// recognised above, so whatever the parser does, a hostile message is only ever
/// "unparseable", never a dead session.
pub fn parse_message(raw: &[u8]) -> Option<Message<'_>> {
    if has_directly_nested_message(raw) {
        return None;
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        MessageParser::default().parse(raw)
    }))
    .ok()
    .flatten()
}

/// Is there a header block declaring a `message/rfc822` (or `message/global`) body that
/// mail-parser parses in place (no base64 / quoted-printable), whose body starts with a
/// header block declaring one too? Conservative: any such pair of blocks counts, wherever
/// they are; a Content-Type line right after a boundary on the same line counts too.
pub(crate) fn has_directly_nested_message(raw: &[u8]) -> bool {
    if !contains_ci(raw, b"message/") {
        return false;
    }
    let lines: Vec<&[u8]> = raw
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    let mut i = 0;
    while i < lines.len() {
        if declares_inline_message(&lines, i) {
            // the block goes on to its blank line; the next block follows it
            let blank = (i..lines.len()).find(|&j| lines[j].is_empty());
            if let Some(blank) = blank {
                let next = blank + 1;
                if next < lines.len()
                    && !lines[next].is_empty()
                    && block_declares_message(&lines, next)
                {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

/// A Content-Type line at `i` naming message/rfc822 or message/global, in a block
/// without a base64 or quoted-printable transfer encoding.
fn declares_inline_message(lines: &[&[u8]], i: usize) -> bool {
    content_type_value(lines, i).is_some_and(is_message_type) && !block_is_encoded(lines, i)
}

/// Does the header block starting at `start` (up to its blank line) declare a message?
fn block_declares_message(lines: &[&[u8]], start: usize) -> bool {
    (start..lines.len())
        .take_while(|&j| !lines[j].is_empty())
        .any(|j| declares_inline_message(lines, j))
}

/// The block around line `i` (back to the previous blank line, on to the next one) has a
/// base64 or quoted-printable Content-Transfer-Encoding.
fn block_is_encoded(lines: &[&[u8]], i: usize) -> bool {
    let start = (0..i)
        .rev()
        .find(|&j| lines[j].is_empty())
        .map_or(0, |j| j + 1);
    let end = (i..lines.len())
        .find(|&j| lines[j].is_empty())
        .unwrap_or(lines.len());
    lines[start..end].iter().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with(b"content-transfer-encoding:")
            && (contains_ci(&l, b"base64") || contains_ci(&l, b"quoted-printable"))
    })
}

/// The value of a Content-Type field on line `i` (at the line's start, or after a
/// boundary `--...` on the same line), with its folded continuation lines.
fn content_type_value(lines: &[&[u8]], i: usize) -> Option<Vec<u8>> {
    const NAME: &[u8] = b"content-type:";
    let line = lines[i].to_ascii_lowercase();
    let at = if line.starts_with(NAME) {
        0
    } else if line.starts_with(b"--") {
        line.windows(NAME.len()).position(|w| w == NAME)?
    } else {
        return None;
    };
    let mut value = line[at + NAME.len()..].to_vec();
    for next in &lines[i + 1..] {
        if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            value.extend_from_slice(&next.to_ascii_lowercase());
        } else {
            break;
        }
    }
    Some(value)
}

fn is_message_type(value: Vec<u8>) -> bool {
    let v: Vec<u8> = value
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'"')
        .collect();
    v.starts_with(b"message/rfc822") || v.starts_with(b"message/global")
}

fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `verify` fuzz target's crash, minimized: a multipart whose only part is a
    /// message/rfc822 whose content is directly another message/rfc822 entity.
    const NESTED: &[u8] = b"Content-Type:multipart;boundary==_1417097536-6559-27\n\n--=_1417097536-6559-27Content-Type:message/rfc822\n\nContent-Type:message/rfc822\n\n\n--=_1417097536-6559-27--";

    #[test]
    fn directly_nested_message_is_refused_not_a_panic() {
        assert!(has_directly_nested_message(NESTED));
        assert!(parse_message(NESTED).is_none());
        // the same with CRLF and spaces
        let crlf = String::from_utf8_lossy(NESTED)
            .replace('\n', "\r\n")
            .replace("Type:", "Type: ");
        assert!(parse_message(crlf.as_bytes()).is_none());
    }

    #[test]
    fn ordinary_nesting_still_parses() {
        let one = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n";
        assert!(!has_directly_nested_message(one));
        assert!(parse_message(one).is_some());
        let encoded = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nQ29udGVudC1UeXBlOiBtZXNzYWdlL3JmYzgyMgoK\r\n--b--\r\n";
        assert!(!has_directly_nested_message(encoded));
        assert!(parse_message(encoded).is_some());
    }
}
