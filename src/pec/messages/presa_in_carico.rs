//! Ricevuta di presa in carico (pec-rules §3 #5): the recipient's punto di ricezione took
//! charge of a busta. One per incoming SMTP transaction, listing its recipients; sent to
//! the sending provider's service mailbox (`mailReceipt` of the index), never to users.

use super::{entity, id_line, receipt_headers, Gestore, Text, UnsignedMessage};
use crate::pec::daticert::Tipo;
use crate::pec::headers::{subject, X_RICEVUTA};
use crate::pec::kind::MessageKind;
use crate::pec::original::Certified;
use crate::pec::timestamp::PecTime;

pub fn presa_in_carico(
    gestore: &Gestore,
    certified: &Certified,
    ricezione: &[String],
    mail_receipt: &str,
    message_id: &str,
    date: PecTime,
) -> UnsignedMessage {
    let text = Text::new("Ricevuta di presa in carico")
        .para(format!(
            "{} il messaggio \"{}\" proveniente da \"{}\" ed indirizzato a:",
            date.italian_phrase(),
            certified.oggetto,
            certified.mittente
        ))
        .para(ricezione.join("\n"))
        .para("è stato accettato dal sistema.")
        .para(id_line(certified));
    let mut daticert = certified.daticert(Tipo::PresaInCarico, &gestore.name, date);
    daticert.ricezione = ricezione.to_vec();
    UnsignedMessage {
        kind: MessageKind::PresaInCarico,
        headers: receipt_headers(
            gestore,
            mail_receipt,
            subject::PRESA_IN_CARICO,
            certified,
            message_id,
            date,
            &[(X_RICEVUTA, "presa-in-carico")],
        ),
        entity: entity(&text, Some(&daticert), None),
        date,
    }
}
