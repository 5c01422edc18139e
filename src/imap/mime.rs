//! A stored message as IMAP sees it: ENVELOPE, BODYSTRUCTURE, `BODY[section]` and the
//! text that SEARCH looks into.
//!
//! mail-parser finds the parts and decodes header values; the byte ranges it reports
//! (`offset_header`, `offset_body`, `offset_end`, absolute in the message unless a
//! message/rfc822 part was transfer-encoded) are what IMAP serves, untouched. IMAP part
//! numbers: the children of a multipart, or of the message a message/rfc822 part holds;
//! a message that is not multipart has one part, `1`, its body.

use std::borrow::Cow;

use base64::Engine;
use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_codec::imap_types::core::{AString, IString, NString, Vec1};
use imap_codec::imap_types::envelope::{Address, Envelope};
use imap_codec::imap_types::fetch::Section;
use mail_parser::{Addr, HeaderName, HeaderValue, Message, MessagePart, MimeHeaders, PartType};

/// A parsed message borrowing its raw bytes.
pub struct Mime<'a> {
    raw: &'a [u8],
    /// Parsed on first use: header sections and whole bodies need no parsing.
    msg: std::cell::OnceCell<Option<Message<'a>>>,
}

impl<'a> Mime<'a> {
    pub fn parse(raw: &'a [u8]) -> Self {
        Mime {
            raw,
            msg: std::cell::OnceCell::new(),
        }
    }

    fn msg(&self) -> Option<&Message<'a>> {
        self.msg
            .get_or_init(|| crate::pec::parse::parse_message(self.raw))
            .as_ref()
    }

    pub fn envelope(&self) -> Envelope<'static> {
        match self.msg() {
            Some(m) => envelope(m),
            None => empty_envelope(),
        }
    }

    /// BODYSTRUCTURE (`extended`) or BODY.
    pub fn structure(&self, extended: bool) -> BodyStructure<'static> {
        match self.msg() {
            Some(m) if !m.parts.is_empty() => structure(m, 0, extended, 0),
            _ => empty_text(self.raw, extended),
        }
    }

    /// The bytes of a `BODY[section]`; None when the section does not exist.
    pub fn section(&self, section: Option<&Section<'_>>) -> Option<Cow<'a, [u8]>> {
        let Some(section) = section else {
            return Some(Cow::Borrowed(self.raw));
        };
        // The top header needs no parsing (FETCH of all headers is common).
        match section {
            Section::Header(None) => return Some(Cow::Borrowed(top_header(self.raw))),
            Section::HeaderFields(None, fields) => {
                return Some(Cow::Owned(filter_fields(
                    top_header(self.raw),
                    fields,
                    true,
                )))
            }
            Section::HeaderFieldsNot(None, fields) => {
                return Some(Cow::Owned(filter_fields(
                    top_header(self.raw),
                    fields,
                    false,
                )))
            }
            _ => {}
        }
        let Some(msg) = self.msg() else {
            return match section {
                Section::Header(None) => Some(Cow::Borrowed(self.raw)),
                Section::Text(None) => Some(Cow::Borrowed(&[])),
                _ => None,
            };
        };
        let path = |p: &Option<imap_codec::imap_types::fetch::Part>| -> Vec<usize> {
            p.as_ref()
                .map(|p| p.0.as_ref().iter().map(|n| n.get() as usize).collect())
                .unwrap_or_default()
        };
        match section {
            Section::Part(p) => {
                let (m, id) = locate(msg, &path(&Some(p.clone())))?;
                let part = &m.parts[id];
                let raw = raw_of(m);
                Some(Cow::Owned(
                    slice(raw, part.offset_body, part.offset_end).to_vec(),
                ))
            }
            Section::Mime(p) => {
                let (m, id) = locate(msg, &path(&Some(p.clone())))?;
                let part = &m.parts[id];
                Some(Cow::Owned(
                    slice(raw_of(m), part.offset_header, part.offset_body).to_vec(),
                ))
            }
            Section::Header(p) => {
                let m = message_at(msg, &path(p))?;
                Some(Cow::Owned(header_block(m).to_vec()))
            }
            Section::Text(p) => {
                let m = message_at(msg, &path(p))?;
                let root = m.parts.first()?;
                Some(Cow::Owned(
                    slice(raw_of(m), root.offset_body, root.offset_end).to_vec(),
                ))
            }
            Section::HeaderFields(p, fields) => {
                let m = message_at(msg, &path(p))?;
                Some(Cow::Owned(filter_fields(header_block(m), fields, true)))
            }
            Section::HeaderFieldsNot(p, fields) => {
                let m = message_at(msg, &path(p))?;
                Some(Cow::Owned(filter_fields(header_block(m), fields, false)))
            }
        }
    }

    /// The unfolded value of every header field `name` (raw and decoded), lower case.
    pub fn header_text(&self, name: &str) -> Vec<String> {
        let Some(msg) = self.msg() else {
            return Vec::new();
        };
        let Some(root) = msg.parts.first() else {
            return Vec::new();
        };
        root.headers
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .map(|h| {
                let raw = unfold(slice(raw_of(msg), h.offset_start, h.offset_end));
                let mut text = String::from_utf8_lossy(&raw).into_owned();
                let decoded = decoded_text(&h.value);
                if !decoded.is_empty() {
                    text.push('\n');
                    text.push_str(&decoded);
                }
                text.to_lowercase()
            })
            .collect()
    }

    /// The Date header as (year, month, day) as written.
    pub fn sent_date(&self) -> Option<chrono::NaiveDate> {
        let d = self.msg()?.date()?;
        chrono::NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())
    }

    /// The decoded text of every text part (nested messages included), lower case.
    pub fn body_text(&self) -> String {
        let mut out = String::new();
        if let Some(m) = self.msg() {
            collect_text(m, &mut out, 0);
        }
        out
    }

    /// The whole header block, lower case.
    pub fn header_block_text(&self) -> String {
        let block = top_header(self.raw);
        String::from_utf8_lossy(&unfold(block)).to_lowercase()
    }
}

fn collect_text(m: &Message<'_>, out: &mut String, depth: usize) {
    for part in &m.parts {
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.push_str(&t.to_lowercase());
                out.push('\n');
            }
            PartType::Message(nested) if depth < MAX_DEPTH => collect_text(nested, out, depth + 1),
            _ => {}
        }
    }
}

fn decoded_text(v: &HeaderValue<'_>) -> String {
    match v {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(l) => l.join(" "),
        HeaderValue::Address(a) => a
            .iter()
            .map(|a| {
                format!(
                    "{} <{}>",
                    a.name.as_deref().unwrap_or(""),
                    a.address.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

fn raw_of<'m>(m: &'m Message<'_>) -> &'m [u8] {
    m.raw_message.as_ref()
}

fn slice(raw: &[u8], start: u32, end: u32) -> &[u8] {
    let end = (end as usize).min(raw.len());
    let start = (start as usize).min(end);
    &raw[start..end]
}

/// The header block of a message (its root part), blank line included.
fn header_block<'m>(m: &'m Message<'_>) -> &'m [u8] {
    match m.parts.first() {
        Some(root) => slice(raw_of(m), root.offset_header, root.offset_body),
        None => raw_of(m),
    }
}

/// The IMAP children of a message: a multipart root's parts, else the root itself.
fn message_children(m: &Message<'_>) -> Vec<usize> {
    match m.parts.first().map(|p| &p.body) {
        Some(PartType::Multipart(ids)) => ids.iter().map(|i| *i as usize).collect(),
        Some(_) => vec![0],
        None => Vec::new(),
    }
}

/// Follows an IMAP part path: the message holding the part, and its index there.
fn locate<'m, 'x>(msg: &'m Message<'x>, path: &[usize]) -> Option<(&'m Message<'x>, usize)> {
    let (first, rest) = path.split_first()?;
    let mut m = msg;
    let mut id = *message_children(m).get(first.checked_sub(1)?)?;
    for n in rest {
        let n = n.checked_sub(1)?;
        match &m.parts.get(id)?.body {
            PartType::Multipart(ids) => id = *ids.get(n)? as usize,
            PartType::Message(nested) => {
                id = *message_children(nested).get(n)?;
                m = nested;
            }
            _ => return None,
        }
    }
    m.parts.get(id)?;
    Some((m, id))
}

/// The message a HEADER/TEXT section refers to: the top one, or a message/rfc822 part's.
fn message_at<'m, 'x>(msg: &'m Message<'x>, path: &[usize]) -> Option<&'m Message<'x>> {
    if path.is_empty() {
        return Some(msg);
    }
    let (m, id) = locate(msg, path)?;
    match &m.parts[id].body {
        PartType::Message(nested) => Some(nested),
        _ => None,
    }
}

/// The header block of a raw message, up to and with the empty line (all of it if
/// there is none).
fn top_header(raw: &[u8]) -> &[u8] {
    let mut end = 0;
    for line in raw.split_inclusive(|b| *b == b'\n') {
        end += line.len();
        if line == b"\r\n" || line == b"\n" {
            return &raw[..end];
        }
    }
    raw
}

/// Removes the line breaks of folded header lines.
fn unfold(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for &b in raw {
        if b != b'\r' && b != b'\n' {
            out.push(b);
        }
    }
    let start = out.iter().position(|b| !b.is_ascii_whitespace());
    let end = out.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(s), Some(e)) => out[s..=e].to_vec(),
        _ => Vec::new(),
    }
}

/// HEADER.FIELDS (`keep`) or HEADER.FIELDS.NOT: the matching fields, then a blank line.
fn filter_fields(block: &[u8], fields: &Vec1<AString<'_>>, keep: bool) -> Vec<u8> {
    let wanted: Vec<Vec<u8>> = fields
        .as_ref()
        .iter()
        .map(|f| f.as_ref().to_ascii_lowercase())
        .collect();
    let mut out = Vec::new();
    let mut take = false;
    for line in block.split_inclusive(|b| *b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line
                .iter()
                .position(|b| *b == b':')
                .map(|i| line[..i].trim_ascii().to_ascii_lowercase());
            take = match name {
                Some(name) => wanted.contains(&name) == keep,
                None => false,
            };
        }
        if take {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn nstring(bytes: Option<&[u8]>) -> NString<'static> {
    match bytes {
        Some(b) => NString(Some(istring(b))),
        None => NString::NIL,
    }
}

/// A string as quoted or literal, whatever its bytes (NUL, forbidden in both, becomes
/// 0x80 as Dovecot does).
pub fn istring(bytes: &[u8]) -> IString<'static> {
    let clean: Cow<[u8]> = if bytes.contains(&0) {
        Cow::Owned(
            bytes
                .iter()
                .map(|b| if *b == 0 { 0x80 } else { *b })
                .collect(),
        )
    } else {
        Cow::Borrowed(bytes)
    };
    IString::try_from(clean.into_owned()).unwrap_or_else(|_| IString::try_from("").unwrap())
}

fn istr(s: &str) -> IString<'static> {
    istring(s.as_bytes())
}

/// The raw, unfolded value of the first `name` header of the message's root.
fn raw_header(m: &Message<'_>, name: HeaderName<'_>) -> Option<Vec<u8>> {
    let root = m.parts.first()?;
    let h = root.headers.iter().find(|h| h.name == name)?;
    Some(unfold(slice(raw_of(m), h.offset_start, h.offset_end)))
}

fn envelope(m: &Message<'_>) -> Envelope<'static> {
    let root = match m.parts.first() {
        Some(r) => r,
        None => return empty_envelope(),
    };
    let addresses = |name: HeaderName<'_>| -> Vec<Address<'static>> {
        root.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| address_list(&h.value))
            .unwrap_or_default()
    };
    let from = addresses(HeaderName::From);
    let sender = addresses(HeaderName::Sender);
    let reply_to = addresses(HeaderName::ReplyTo);
    Envelope {
        date: nstring(raw_header(m, HeaderName::Date).as_deref()),
        subject: nstring(raw_header(m, HeaderName::Subject).as_deref()),
        // RFC 3501: sender and reply-to default to from.
        sender: if sender.is_empty() {
            from.clone()
        } else {
            sender
        },
        reply_to: if reply_to.is_empty() {
            from.clone()
        } else {
            reply_to
        },
        from,
        to: addresses(HeaderName::To),
        cc: addresses(HeaderName::Cc),
        bcc: addresses(HeaderName::Bcc),
        in_reply_to: nstring(raw_header(m, HeaderName::InReplyTo).as_deref()),
        message_id: nstring(raw_header(m, HeaderName::MessageId).as_deref()),
    }
}

fn empty_envelope() -> Envelope<'static> {
    Envelope {
        date: NString::NIL,
        subject: NString::NIL,
        from: Vec::new(),
        sender: Vec::new(),
        reply_to: Vec::new(),
        to: Vec::new(),
        cc: Vec::new(),
        bcc: Vec::new(),
        in_reply_to: NString::NIL,
        message_id: NString::NIL,
    }
}

/// A display name as it may appear in a header: ASCII as is, else RFC 2047 encoded
/// (mail-parser hands names decoded; IMAP wants them as on the wire).
fn display_name(name: &str) -> NString<'static> {
    if name.is_ascii() {
        return nstring(Some(name.as_bytes()));
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(name.as_bytes());
    nstring(Some(format!("=?UTF-8?B?{b64}?=").as_bytes()))
}

fn address(a: &Addr<'_>) -> Address<'static> {
    let (mailbox, host) = match a.address.as_deref() {
        Some(addr) => match addr.rsplit_once('@') {
            Some((local, host)) => (
                nstring(Some(local.as_bytes())),
                nstring(Some(host.as_bytes())),
            ),
            // host NIL would mean a group marker
            None => (nstring(Some(addr.as_bytes())), nstring(Some(b""))),
        },
        None => (NString::NIL, nstring(Some(b""))),
    };
    Address {
        name: a.name.as_deref().map_or(NString::NIL, display_name),
        adl: NString::NIL,
        mailbox,
        host,
    }
}

fn address_list(v: &HeaderValue<'_>) -> Vec<Address<'static>> {
    match v {
        HeaderValue::Address(mail_parser::Address::List(list)) => {
            list.iter().map(address).collect()
        }
        HeaderValue::Address(mail_parser::Address::Group(groups)) => {
            let mut out = Vec::new();
            for g in groups {
                match &g.name {
                    // RFC 3501 group syntax: a start marker with the name, an end marker.
                    Some(name) => {
                        out.push(Address {
                            name: NString::NIL,
                            adl: NString::NIL,
                            mailbox: nstring(Some(name.as_bytes())),
                            host: NString::NIL,
                        });
                        out.extend(g.addresses.iter().map(address));
                        out.push(Address {
                            name: NString::NIL,
                            adl: NString::NIL,
                            mailbox: NString::NIL,
                            host: NString::NIL,
                        });
                    }
                    None => out.extend(g.addresses.iter().map(address)),
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Text lines of a body, the last one counted even without its line break (as Dovecot).
fn lines(body: &[u8]) -> u32 {
    let breaks = body.iter().filter(|b| **b == b'\n').count();
    let unterminated = usize::from(body.last().is_some_and(|b| *b != b'\n'));
    u32::try_from(breaks + unterminated).unwrap_or(u32::MAX)
}

fn params(part: &MessagePart<'_>) -> Vec<(IString<'static>, IString<'static>)> {
    part.content_type()
        .and_then(|ct| ct.attributes.as_ref())
        .map(|attrs| {
            attrs
                .iter()
                .map(|a| (istr(&a.name.to_ascii_uppercase()), istr(&a.value)))
                .collect()
        })
        .unwrap_or_default()
}

fn disposition(
    part: &MessagePart<'_>,
) -> Option<(IString<'static>, Vec<(IString<'static>, IString<'static>)>)> {
    let d = part.content_disposition()?;
    let attrs = d
        .attributes
        .as_ref()
        .map(|attrs| {
            attrs
                .iter()
                .map(|a| (istr(&a.name.to_ascii_uppercase()), istr(&a.value)))
                .collect()
        })
        .unwrap_or_default();
    Some((istr(&d.c_type.to_ascii_uppercase()), attrs))
}

fn extension_tail(part: &MessagePart<'_>) -> Option<Disposition<'static>> {
    let language = part
        .content_language()
        .as_text_list()
        .map(|l| l.iter().map(|s| istr(s)).collect())
        .unwrap_or_default();
    Some(Disposition {
        disposition: disposition(part),
        tail: Some(Language {
            language,
            tail: Some(Location {
                location: part
                    .content_location()
                    .map_or(NString::NIL, |l| nstring(Some(l.as_bytes()))),
                extensions: Vec::new(),
            }),
        }),
    })
}

/// Nesting shown in BODYSTRUCTURE; deeper parts are shown as opaque leaves, so that a
/// hostile message cannot overflow the stack here or in the encoder.
const MAX_DEPTH: usize = 24;

fn structure(m: &Message<'_>, id: usize, extended: bool, depth: usize) -> BodyStructure<'static> {
    let part = &m.parts[id];
    let raw = raw_of(m);
    let (ctype, subtype) = match part.content_type() {
        Some(ct) => (
            ct.c_type.to_ascii_uppercase(),
            ct.c_subtype
                .as_deref()
                .map(str::to_ascii_uppercase)
                .unwrap_or_default(),
        ),
        None => ("TEXT".to_owned(), "PLAIN".to_owned()),
    };
    let deep = depth >= MAX_DEPTH;
    if let (PartType::Multipart(ids), false) = (&part.body, deep) {
        let bodies: Vec<BodyStructure<'static>> = ids
            .iter()
            .map(|i| structure(m, *i as usize, extended, depth + 1))
            .collect();
        if let Ok(bodies) = Vec1::try_from(bodies) {
            return BodyStructure::Multi {
                bodies,
                subtype: istr(&subtype),
                extension_data: extended.then(|| MultiPartExtensionData {
                    parameter_list: params(part),
                    tail: extension_tail(part),
                }),
            };
        }
    }
    let body = slice(raw, part.offset_body, part.offset_end);
    let mut parameter_list = params(part);
    if parameter_list.is_empty() && ctype == "TEXT" {
        parameter_list.push((istr("CHARSET"), istr("US-ASCII")));
    }
    let encoding = part
        .headers
        .iter()
        .find(|h| h.name == HeaderName::ContentTransferEncoding)
        .map(|h| {
            String::from_utf8_lossy(&unfold(slice(raw, h.offset_start, h.offset_end)))
                .to_ascii_uppercase()
        })
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "7BIT".to_owned());
    let basic = BasicFields {
        parameter_list,
        id: part
            .content_id()
            .map_or(NString::NIL, |s| nstring(Some(format!("<{s}>").as_bytes()))),
        description: part
            .content_description()
            .map_or(NString::NIL, |s| nstring(Some(s.as_bytes()))),
        content_transfer_encoding: istr(&encoding),
        size: u32::try_from(body.len()).unwrap_or(u32::MAX),
    };
    let specific = match (&part.body, ctype.as_str()) {
        (PartType::Message(nested), _) if !nested.parts.is_empty() && !deep => {
            SpecificFields::Message {
                envelope: Box::new(envelope(nested)),
                body_structure: Box::new(structure(nested, 0, extended, depth + 1)),
                number_of_lines: lines(body),
            }
        }
        (_, "TEXT") if !deep => SpecificFields::Text {
            subtype: istr(&subtype),
            number_of_lines: lines(body),
        },
        _ => SpecificFields::Basic {
            r#type: istr(&ctype),
            subtype: istr(&subtype),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: extended.then(|| SinglePartExtensionData {
            md5: NString::NIL,
            tail: extension_tail(part),
        }),
    }
}

/// A message mail-parser could not read: one text/plain part.
fn empty_text(raw: &[u8], extended: bool) -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: vec![(istr("CHARSET"), istr("US-ASCII"))],
                id: NString::NIL,
                description: NString::NIL,
                content_transfer_encoding: istr("7BIT"),
                size: u32::try_from(raw.len()).unwrap_or(u32::MAX),
            },
            specific: SpecificFields::Text {
                subtype: istr("PLAIN"),
                number_of_lines: lines(raw),
            },
        },
        extension_data: extended.then_some(SinglePartExtensionData {
            md5: NString::NIL,
            tail: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::fetch::Part;
    use std::num::NonZeroU32;

    const MSG: &[u8] = b"From: =?UTF-8?Q?Jos=C3=A9?= <jose@x.example>\r\n\
Subject: hi\r\n there\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\nworld\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n\
--b--\r\n";

    fn part(s: &str) -> Part {
        let path: Vec<NonZeroU32> = s.split('.').map(|n| n.parse().unwrap()).collect();
        Part(Vec1::try_from(path).unwrap())
    }

    #[test]
    fn imap_sections_are_raw_bytes() {
        let m = Mime::parse(MSG);
        let get = |s: Section<'_>| m.section(Some(&s)).map(|c| c.into_owned());
        assert_eq!(get(Section::Part(part("1"))).unwrap(), b"hello\r\nworld");
        assert_eq!(
            get(Section::Mime(part("1"))).unwrap(),
            b"Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(
            get(Section::Header(Some(part("2")))).unwrap(),
            b"Subject: inner\r\n\r\n"
        );
        assert_eq!(get(Section::Text(Some(part("2")))).unwrap(), b"inner body");
        assert_eq!(get(Section::Part(part("2.1"))).unwrap(), b"inner body");
        assert!(get(Section::Part(part("3"))).is_none());
        assert!(get(Section::Part(part("1.1"))).is_none());
        let fields = Vec1::try_from(vec![AString::try_from("subject").unwrap()]).unwrap();
        assert_eq!(
            get(Section::HeaderFields(None, fields)).unwrap(),
            b"Subject: hi\r\n there\r\n\r\n"
        );
        assert!(get(Section::Text(None)).unwrap().starts_with(b"preamble"));
    }

    #[test]
    fn imap_deep_nesting_is_cut() {
        let mut msg = Vec::new();
        for i in 0..3000 {
            msg.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        msg.extend_from_slice(b"\r\nbottom\r\n");
        let structure = Mime::parse(&msg).structure(true);
        let response = imap_codec::imap_types::response::Response::Data(
            imap_codec::imap_types::response::Data::Fetch {
                seq: NonZeroU32::MIN,
                items: Vec1::from(
                    imap_codec::imap_types::fetch::MessageDataItem::BodyStructure(structure),
                ),
            },
        );
        use imap_codec::encode::Encoder;
        let wire = imap_codec::ResponseCodec::default()
            .encode(&response)
            .dump();
        assert!(wire.len() < 10_000, "{}", wire.len());
    }

    #[test]
    fn imap_envelope_keeps_encoded_words() {
        let env = Mime::parse(MSG).envelope();
        assert_eq!(env.subject, nstring(Some(b"hi there")));
        let from = &env.from[0];
        assert_eq!(from.name, nstring(Some("=?UTF-8?B?Sm9zw6k=?=".as_bytes())));
        assert_eq!(from.mailbox, nstring(Some(b"jose")));
        assert_eq!(env.sender, env.from);
    }
}
