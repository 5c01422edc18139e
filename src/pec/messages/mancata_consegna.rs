//! Avviso di mancata consegna (pec-rules §3 #10) from the recipient's punto di consegna,
//! and its virus variant (#8) that the sender's provider emits on a rilevazione virus.

use super::{entity, id_line, receipt_headers, Gestore, Text, UnsignedMessage};
use crate::pec::daticert::{Errore, Tipo};
use crate::pec::headers::{subject, VERIFICA_SICUREZZA_ERRORE, X_RICEVUTA, X_VERIFICA_SICUREZZA};
use crate::pec::kind::MessageKind;
use crate::pec::original::Certified;
use crate::pec::timestamp::PecTime;

/// `errore` is no-dest, no-dominio or altro; `detail` the short description
/// (e.g. `5.1.1 - indirizzo non valido`).
pub fn mancata_consegna(
    gestore: &Gestore,
    certified: &Certified,
    recipient: &str,
    errore: Errore,
    detail: &str,
    message_id: &str,
    date: PecTime,
) -> UnsignedMessage {
    let text = Text::new("Avviso di mancata consegna")
        .para(format!(
            "{} nel messaggio \"{}\" proveniente da \"{}\" ed indirizzato a \"{}\" è stato rilevato un errore: {}.",
            date.italian_phrase(),
            certified.oggetto,
            certified.mittente,
            recipient,
            detail
        ))
        .para("Il messaggio è stato rifiutato dal sistema.")
        .para(id_line(certified));
    let mut daticert = certified.daticert(Tipo::ErroreConsegna, &gestore.name, date);
    daticert.errore = errore;
    daticert.consegna = Some(recipient.to_string());
    daticert.errore_esteso = Some(detail.to_string());
    UnsignedMessage {
        kind: MessageKind::MancataConsegna,
        headers: receipt_headers(
            gestore,
            &certified.mittente,
            subject::MANCATA_CONSEGNA,
            certified,
            message_id,
            date,
            &[(X_RICEVUTA, "errore-consegna")],
        ),
        entity: entity(&text, Some(&daticert), None),
        date,
    }
}

pub fn mancata_consegna_virus(
    gestore: &Gestore,
    certified: &Certified,
    recipient: &str,
    detected: &str,
    message_id: &str,
    date: PecTime,
) -> UnsignedMessage {
    let text = Text::new("Problema di sicurezza")
        .para(format!(
            "{} nel messaggio \"{}\" indirizzato a \"{}\" è stato rilevato un problema di sicurezza: {}.",
            date.italian_phrase(),
            certified.oggetto,
            recipient,
            detected
        ))
        .para("Il messaggio non è stato consegnato.")
        .para(id_line(certified));
    let mut daticert = certified.daticert(Tipo::ErroreConsegna, &gestore.name, date);
    daticert.errore = Errore::Virus;
    daticert.consegna = Some(recipient.to_string());
    daticert.errore_esteso = Some(detected.to_string());
    UnsignedMessage {
        kind: MessageKind::MancataConsegnaVirus,
        headers: receipt_headers(
            gestore,
            &certified.mittente,
            subject::MANCATA_CONSEGNA_VIRUS,
            certified,
            message_id,
            date,
            &[
                (X_RICEVUTA, "errore-consegna"),
                (X_VERIFICA_SICUREZZA, VERIFICA_SICUREZZA_ERRORE),
            ],
        ),
        entity: entity(&text, Some(&daticert), None),
        date,
    }
}
