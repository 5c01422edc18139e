//! What the webmail shows of a stored message: a summary for lists (cached by uid) and,
//! when opened, the PEC kind, the daticert facts, the signature status, the certified
//! original inside a busta and its attachments. Bodies are shown as text only: HTML
//! from a message is never rendered.

use mail_parser::{Address, Message, MimeHeaders};

use crate::pec::parse::parse_message;

use crate::pec::classify::{classify, Class, Classification};
use crate::pec::daticert::TipoRicevuta;
use crate::pec::kind::{MessageKind, TimeoutStage};
use crate::smime::{Verification, VerifyOptions};

use super::ui::Lang;

/// The list view of a message.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub kind: Option<MessageKind>,
    pub malformed: bool,
    /// daticert identificativo (receipts and envelopes).
    pub identificativo: Option<String>,
    /// Message-ID without brackets; for our Sent copies it is the identificativo.
    pub message_id: Option<String>,
    /// daticert consegna: the recipient a delivery receipt is about.
    pub consegna: Option<String>,
    pub has_attachments: bool,
    /// Lower-cased text searched by the list's search box.
    pub haystack: String,
}

pub fn addresses(a: Option<&Address<'_>>) -> String {
    let Some(a) = a else {
        return String::new();
    };
    a.iter()
        .map(|addr| match (addr.name(), addr.address()) {
            (Some(n), Some(e)) if !n.is_empty() && n != e => format!("{n} <{e}>"),
            (_, Some(e)) => e.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn summarize(raw: &[u8]) -> Summary {
    let class = classify(raw);
    let message = parse_message(raw);
    let original = class.postacert.as_deref().and_then(parse_message);
    let d = class.daticert.as_ref();
    let kind = class.kind();
    let (from, subject, to) = match (&kind, &original, &message) {
        // A busta is read as the original it carries.
        (Some(MessageKind::BustaTrasporto), Some(o), _) => (
            d.map(|d| d.mittente.clone())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| addresses(o.from())),
            o.subject().unwrap_or_default().to_string(),
            addresses(o.to()),
        ),
        // Receipts and notices: the issuing provider, not its service address.
        (Some(_), _, Some(m)) => (
            d.map(|d| d.gestore_emittente.clone())
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| addresses(m.from())),
            m.subject().unwrap_or_default().to_string(),
            addresses(m.to()),
        ),
        (_, _, Some(m)) => (
            addresses(m.from()),
            m.subject().unwrap_or_default().to_string(),
            addresses(m.to()),
        ),
        _ => Default::default(),
    };
    let has_attachments = match (&kind, &original, &message) {
        (Some(MessageKind::BustaTrasporto), Some(o), _) => o.attachment_count() > 0,
        (None, _, Some(m)) => m.attachment_count() > 0,
        _ => false,
    };
    let haystack = format!("{from}\n{to}\n{subject}").to_lowercase();
    Summary {
        from,
        to,
        subject,
        kind,
        malformed: class.class == Class::Malformed,
        identificativo: d.map(|d| d.identificativo.clone()),
        message_id: message
            .as_ref()
            .and_then(|m| m.message_id())
            .map(str::to_string),
        consegna: d.and_then(|d| d.consegna.clone()),
        has_attachments,
        haystack,
    }
}

/// Badge class and label of a kind.
pub fn badge(
    lang: Lang,
    kind: Option<MessageKind>,
    malformed: bool,
) -> (&'static str, &'static str) {
    use MessageKind::*;
    match kind {
        Some(BustaTrasporto) => ("busta", lang.t("Posta certificata", "Certified mail")),
        Some(Accettazione) => ("accettazione", lang.t("Accettazione", "Acceptance")),
        Some(NonAccettazione) | Some(NonAccettazioneVirus) => (
            "non-accettazione",
            lang.t("Non accettazione", "Not accepted"),
        ),
        Some(PresaInCarico) => ("presa", lang.t("Presa in carico", "Taken in charge")),
        Some(AvvenutaConsegna(TipoRicevuta::Completa)) => {
            ("consegna", lang.t("Consegna", "Delivered"))
        }
        Some(AvvenutaConsegna(TipoRicevuta::Breve)) => {
            ("consegna", lang.t("Consegna (breve)", "Delivered (short)"))
        }
        Some(AvvenutaConsegna(TipoRicevuta::Sintetica)) => (
            "consegna",
            lang.t("Consegna (sintetica)", "Delivered (summary)"),
        ),
        Some(MancataConsegna) | Some(MancataConsegnaVirus) => {
            ("mancata", lang.t("Mancata consegna", "Not delivered"))
        }
        Some(SuperamentoTempoMassimo(TimeoutStage::Preavviso12h)) => {
            ("timeout", lang.t("Preavviso 12 ore", "12-hour warning"))
        }
        Some(SuperamentoTempoMassimo(_)) => ("timeout", lang.t("Tempo scaduto", "Timed out")),
        Some(BustaAnomalia) => ("anomalia", lang.t("Anomalia", "Anomaly")),
        Some(RilevazioneVirus) => ("mancata", lang.t("Virus rilevato", "Virus found")),
        None if malformed => ("err", lang.t("Non conforme", "Malformed")),
        None => ("plain", lang.t("Ordinaria", "Ordinary")),
    }
}

#[derive(Debug, Clone)]
pub struct Attachment {
    /// `o<n>`: n-th attachment of the stored message; `p<n>`: of the certified original.
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: usize,
}

/// A message as shown: headers, text, attachments.
#[derive(Debug, Clone, Default)]
pub struct Shown {
    pub from: String,
    pub to: String,
    pub cc: String,
    pub subject: String,
    pub date: Option<i64>,
    pub text: String,
    pub attachments: Vec<Attachment>,
}

pub struct Detail {
    pub class: Classification,
    /// None: not signed; Some(Err): signature present but unreadable.
    pub signature: Option<Result<Verification, String>>,
    /// The stored message itself.
    pub outer: Shown,
    /// The certified original inside a busta (or a complete receipt).
    pub original: Option<Shown>,
}

const MAX_TEXT: usize = 256 * 1024;

fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    part.content_type()
        .map(|c| match c.subtype() {
            Some(s) => format!("{}/{}", c.ctype(), s),
            None => c.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into())
}

fn shown(message: &Message<'_>, prefix: char) -> Shown {
    let mut text = message
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default();
    if text.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n…");
    }
    let attachments = message
        .attachments()
        .enumerate()
        .map(|(n, part)| Attachment {
            id: format!("{prefix}{n}"),
            name: part
                .attachment_name()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    if part.is_message() {
                        "messaggio.eml".into()
                    } else {
                        format!("allegato-{}", n + 1)
                    }
                }),
            content_type: content_type(part),
            size: part.len(),
        })
        .collect();
    Shown {
        from: addresses(message.from()),
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        subject: message.subject().unwrap_or_default().to_string(),
        date: message.date().map(|d| d.to_timestamp()),
        text,
        attachments,
    }
}

pub fn detail(raw: &[u8], anchors: Vec<Vec<u8>>) -> Detail {
    let class = classify(raw);
    let outer = parse_message(raw)
        .map(|m| shown(&m, 'o'))
        .unwrap_or_default();
    let original = class
        .postacert
        .as_deref()
        .and_then(parse_message)
        .map(|m| shown(&m, 'p'));
    let signed = raw_is_signed(raw);
    let signature = signed.then(|| {
        crate::smime::verify_message(raw, &VerifyOptions { anchors, at: None })
            .map_err(|e| e.to_string())
    });
    Detail {
        class,
        signature,
        outer,
        original,
    }
}

fn raw_is_signed(raw: &[u8]) -> bool {
    parse_message(raw).is_some_and(|m| {
        m.content_type().is_some_and(|c| {
            c.ctype().eq_ignore_ascii_case("multipart")
                && c.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("signed"))
        })
    })
}

/// An attachment's name, type and bytes, by the id of [`Attachment`].
pub fn attachment(raw: &[u8], id: &str) -> Option<(String, Vec<u8>)> {
    let mut chars = id.chars();
    let prefix = chars.next()?;
    let n: usize = chars.as_str().parse().ok()?;
    let pick = |m: &Message<'_>| {
        m.attachments().nth(n).map(|part| {
            let name = part
                .attachment_name()
                .map(str::to_string)
                .unwrap_or_else(|| format!("allegato-{}", n + 1));
            (name, part.contents().to_vec())
        })
    };
    match prefix {
        'o' => pick(&parse_message(raw)?),
        'p' => {
            let class = classify(raw);
            let original = class.postacert?;
            pick(&parse_message(&original[..])?)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_summary_and_attachments() {
        let raw = mail_builder::MessageBuilder::new()
            .from(("Alice", "alice@pec.x.test"))
            .to("bob@pec.y.test")
            .subject("Fattura")
            .text_body("Buongiorno")
            .attachment("application/pdf", "fattura.pdf", &b"%PDF-1.4"[..])
            .write_to_vec()
            .unwrap();
        let s = summarize(&raw);
        assert_eq!(s.from, "Alice <alice@pec.x.test>");
        assert_eq!(s.subject, "Fattura");
        assert!(s.kind.is_none() && !s.malformed && s.has_attachments);
        let d = detail(&raw, Vec::new());
        assert!(d.signature.is_none());
        assert_eq!(d.outer.attachments[0].name, "fattura.pdf");
        assert_eq!(d.outer.attachments[0].content_type, "application/pdf");
        assert_eq!(
            attachment(&raw, "o0"),
            Some(("fattura.pdf".into(), b"%PDF-1.4".to_vec()))
        );
        assert!(attachment(&raw, "o7").is_none());
        assert!(attachment(&raw, "../x").is_none());
        assert!(attachment(&raw, "").is_none());
        assert!(attachment(&raw, "é0").is_none());
    }
}
