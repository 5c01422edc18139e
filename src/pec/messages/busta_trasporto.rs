//! Busta di trasporto (pec-rules §3 #4, §2.3): the signed envelope that carries the
//! original, unchanged but for the Message-ID rewrite, to every recipient.

use super::{entity_enclosing, recipient_lines, Gestore, Text, UnsignedMessage};
use crate::pec::daticert::{Tipo, TipoRicevuta};
use crate::pec::headers::{
    per_conto_di, subject, TRASPORTO_POSTA_CERTIFICATA, X_RIFERIMENTO_MESSAGE_ID, X_TIPO_RICEVUTA,
    X_TRASPORTO,
};
use crate::pec::kind::MessageKind;
use crate::pec::mime;
use crate::pec::original::{self, Certified};
use crate::pec::timestamp::PecTime;

/// Headers of the original the busta keeps unmodified (RFC 6109 §3.1.5).
const KEPT: [&str; 5] = ["Received", "Return-Path", "To", "Cc", "Reply-To"];

/// `original` is the message as [`original::rewrite_message_id`] left it; `date` the
/// instant of acceptance; the busta's Message-ID is the identificativo.
pub fn busta_trasporto(
    gestore: &Gestore,
    certified: &Certified,
    original: &[u8],
    requested: Option<TipoRicevuta>,
    date: PecTime,
) -> UnsignedMessage {
    busta_trasporto_owned(gestore, certified, original.to_vec(), requested, date).0
}

/// [`busta_trasporto`] built in the original's buffer, which it takes: a 30 MB
/// original is never copied. Also where the original sits in the entity.
pub fn busta_trasporto_owned(
    gestore: &Gestore,
    certified: &Certified,
    original: Vec<u8>,
    requested: Option<TipoRicevuta>,
    date: PecTime,
) -> (UnsignedMessage, std::ops::Range<usize>) {
    let original = mime::crlf_owned(original);
    let mut headers = envelope_headers(
        &original,
        &certified.mittente,
        subject::POSTA_CERTIFICATA,
        gestore,
        date,
    );
    headers.push((
        "Message-ID".into(),
        format!("<{}>", certified.identificativo),
    ));
    headers.push((
        X_RIFERIMENTO_MESSAGE_ID.into(),
        certified
            .msgid
            .clone()
            .unwrap_or_else(|| format!("<{}>", certified.identificativo)),
    ));
    headers.push((X_TRASPORTO.into(), TRASPORTO_POSTA_CERTIFICATA.into()));
    if let Some(tipo) = requested {
        headers.push((X_TIPO_RICEVUTA.into(), tipo.as_str().into()));
    }

    let text = Text::new("Messaggio di posta certificata")
        .para(format!(
            "{} il messaggio \"{}\" è stato inviato da \"{}\"\nindirizzato a:",
            date.italian_phrase(),
            certified.oggetto,
            certified.mittente
        ))
        .para(recipient_lines(certified))
        .para("Il messaggio originale è incluso in allegato.")
        .para(super::id_line(certified));
    let mut daticert = certified.daticert(Tipo::PostaCertificata, &gestore.name, date);
    daticert.ricevuta = Some(requested.unwrap_or_default());
    let (entity, enclosed) = entity_enclosing(&text, Some(&daticert), original);
    let busta = UnsignedMessage {
        kind: MessageKind::BustaTrasporto,
        headers,
        entity,
        date,
    };
    (busta, enclosed)
}

/// The header set shared by both buste: kept originals, Date, Subject with the prefix,
/// `From: "Per conto di: …"` and a Reply-To when the original had none.
pub(super) fn envelope_headers(
    original: &[u8],
    sender: &str,
    prefix: &str,
    gestore: &Gestore,
    date: PecTime,
) -> Vec<(String, String)> {
    let head = &original[..original::find_header_end(original)];
    let fields = original::header_fields(head);
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut raw_subject = None;
    for field in &fields {
        let name = original::field_name(field);
        if let Some(kept) = KEPT.iter().find(|k| k.eq_ignore_ascii_case(name)) {
            headers.push((kept.to_string(), original::field_raw_value(field)));
        } else if name.eq_ignore_ascii_case("Subject") && raw_subject.is_none() {
            raw_subject = Some(original::field_raw_value(field));
        }
    }
    if !headers.iter().any(|(n, _)| n == "Reply-To") {
        headers.push(("Reply-To".into(), sender.to_string()));
    }
    headers.push(("Date".into(), date.rfc5322()));
    headers.push(("Subject".into(), prefixed_subject(prefix, raw_subject)));
    headers.push((
        "From".into(),
        mime::mailbox(&per_conto_di(sender), &gestore.service_address),
    ));
    headers
}

/// The prefix before the original Subject as it was written (encoded words included);
/// never strip an existing prefix (pec-rules §12).
fn prefixed_subject(prefix: &str, raw: Option<String>) -> String {
    match raw {
        Some(raw) if raw.is_ascii() => format!("{prefix}{raw}"),
        Some(raw) => mime::encode_unstructured(&format!("{prefix}{}", raw.replace("\r\n", ""))),
        None => prefix.trim_end().to_string(),
    }
}
