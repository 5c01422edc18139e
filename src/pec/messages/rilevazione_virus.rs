//! Avviso di rilevazione virus (pec-rules §3 #7): the recipient's punto di ricezione
//! found a virus in a valid busta. One per recipient, to the sending provider's service
//! mailbox; never carries the message.

use super::{entity, id_line, receipt_headers, Gestore, Text, UnsignedMessage};
use crate::pec::daticert::{Errore, Tipo};
use crate::pec::headers::{subject, X_MITTENTE, X_RICEVUTA};
use crate::pec::kind::MessageKind;
use crate::pec::original::Certified;
use crate::pec::timestamp::PecTime;

pub fn rilevazione_virus(
    gestore: &Gestore,
    certified: &Certified,
    recipient: &str,
    detected: &str,
    mail_receipt: &str,
    message_id: &str,
    date: PecTime,
) -> UnsignedMessage {
    let text = Text::new("Problema di sicurezza")
        .para(format!(
            "{} nel messaggio \"{}\" proveniente da \"{}\" ed indirizzato a \"{}\" è stato rilevato un problema di sicurezza: {}.",
            date.italian_phrase(),
            certified.oggetto,
            certified.mittente,
            recipient,
            detected
        ))
        .para("Il messaggio non è stato consegnato.")
        .para(id_line(certified));
    let mut daticert = certified.daticert(Tipo::RilevazioneVirus, &gestore.name, date);
    daticert.errore = Errore::Virus;
    daticert.consegna = Some(recipient.to_string());
    daticert.errore_esteso = Some(detected.to_string());
    UnsignedMessage {
        kind: MessageKind::RilevazioneVirus,
        headers: receipt_headers(
            gestore,
            mail_receipt,
            subject::PROBLEMA_SICUREZZA,
            certified,
            message_id,
            date,
            &[
                (X_RICEVUTA, "rilevazione-virus"),
                (X_MITTENTE, certified.mittente.as_str()),
            ],
        ),
        entity: entity(&text, Some(&daticert), None),
        date,
    }
}
