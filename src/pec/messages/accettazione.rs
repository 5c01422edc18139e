//! Ricevuta di accettazione (pec-rules §3 #1): the access point admitted the message.

use super::{entity, id_line, receipt_headers, recipient_lines, Gestore, Text, UnsignedMessage};
use crate::pec::daticert::Tipo;
use crate::pec::headers::{subject, X_RICEVUTA};
use crate::pec::kind::MessageKind;
use crate::pec::original::Certified;
use crate::pec::timestamp::PecTime;

pub fn accettazione(
    gestore: &Gestore,
    certified: &Certified,
    message_id: &str,
    date: PecTime,
) -> UnsignedMessage {
    let text = Text::new("Ricevuta di accettazione")
        .para(format!(
            "{} il messaggio \"{}\" proveniente da \"{}\" ed indirizzato a:",
            date.italian_phrase(),
            certified.oggetto,
            certified.mittente
        ))
        .para(recipient_lines(certified))
        .para("è stato accettato dal sistema ed inoltrato.")
        .para(id_line(certified))
        .para("L'allegato daticert.xml contiene informazioni di servizio sulla trasmissione.");
    let daticert = certified.daticert(Tipo::Accettazione, &gestore.name, date);
    UnsignedMessage {
        kind: MessageKind::Accettazione,
        headers: receipt_headers(
            gestore,
            &certified.mittente,
            subject::ACCETTAZIONE,
            certified,
            message_id,
            date,
            &[(X_RICEVUTA, "accettazione")],
        ),
        entity: entity(&text, Some(&daticert), None),
        date,
    }
}
