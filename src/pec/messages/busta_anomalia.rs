//! Busta di anomalia (pec-rules §3 #6, §6.3): what the punto di ricezione wraps around a
//! message it cannot certify (ordinary mail, or a signed message that is not a correct
//! busta or receipt). No daticert.xml: nothing is certified; the received message is
//! attached whole as postacert.eml, and its Message-ID is kept.

use super::busta_trasporto::envelope_headers;
use super::{entity, Gestore, Text, UnsignedMessage};
use crate::pec::headers::{subject, TRASPORTO_ERRORE, X_TRASPORTO};
use crate::pec::kind::MessageKind;
use crate::pec::mime;
use crate::pec::original::{self, OriginalHeaders};
use crate::pec::timestamp::PecTime;

/// `errore` says why it could not be certified; `fallback_message_id` is used only when
/// the received message has no Message-ID.
pub fn busta_anomalia(
    gestore: &Gestore,
    received: &[u8],
    errore: &str,
    fallback_message_id: &str,
    date: PecTime,
) -> UnsignedMessage {
    let received = mime::crlf_bytes(received);
    let facts = OriginalHeaders::parse(&received).unwrap_or_default();
    let sender = facts.from.first().cloned().unwrap_or_default();
    let mut headers = envelope_headers(&received, &sender, subject::ANOMALIA, gestore, date);
    let head = &received[..original::find_header_end(&received)];
    let message_id = original::header_fields(head)
        .into_iter()
        .find(|f| original::field_name(f).eq_ignore_ascii_case("Message-ID"))
        .map(original::field_value)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("<{fallback_message_id}>"));
    headers.push(("Message-ID".into(), message_id));
    headers.push((X_TRASPORTO.into(), TRASPORTO_ERRORE.into()));

    let recipients: Vec<&str> = facts
        .to
        .iter()
        .chain(&facts.cc)
        .map(String::as_str)
        .collect();
    let text = Text::new("Anomalia nel messaggio")
        .para(format!(
            "{} il messaggio \"{}\" proveniente da \"{}\" ed indirizzato a:",
            date.italian_phrase(),
            facts.subject.as_deref().unwrap_or(""),
            sender
        ))
        .para(recipients.join("\n"))
        .para(format!(
            "è stato ricevuto. I dati non sono stati certificati per il seguente errore: {errore}."
        ))
        .para("Il messaggio originale è incluso in allegato.");
    UnsignedMessage {
        kind: MessageKind::BustaAnomalia,
        headers,
        entity: entity(&text, None, Some(&received)),
        date,
    }
}
