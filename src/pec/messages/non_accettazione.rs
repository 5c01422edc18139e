//! Avviso di non accettazione, for formal errors or a virus (pec-rules §3 #2, #3).
//! Never carries the original.

use super::{entity, id_line, receipt_headers, Gestore, Text, UnsignedMessage};
use crate::pec::daticert::{Errore, Tipo};
use crate::pec::headers::{subject, VERIFICA_SICUREZZA_ERRORE, X_RICEVUTA, X_VERIFICA_SICUREZZA};
use crate::pec::kind::MessageKind;
use crate::pec::original::Certified;
use crate::pec::timestamp::PecTime;

/// `reason` says which formal check failed, in words the holder understands.
pub fn non_accettazione(
    gestore: &Gestore,
    certified: &Certified,
    reason: &str,
    message_id: &str,
    date: PecTime,
) -> UnsignedMessage {
    let text = Text::new("Errore nell'accettazione del messaggio")
        .para(format!(
            "{} nel messaggio \"{}\" proveniente da \"{}\" è stato rilevato un problema che ne impedisce l'accettazione a causa di: {}.",
            date.italian_phrase(),
            certified.oggetto,
            certified.mittente,
            reason
        ))
        .para("Il messaggio non è stato accettato.")
        .para(id_line(certified));
    let mut daticert = certified.daticert(Tipo::NonAccettazione, &gestore.name, date);
    daticert.errore = Errore::Altro;
    daticert.errore_esteso = Some(reason.to_string());
    UnsignedMessage {
        kind: MessageKind::NonAccettazione,
        headers: receipt_headers(
            gestore,
            &certified.mittente,
            subject::NON_ACCETTAZIONE,
            certified,
            message_id,
            date,
            &[(X_RICEVUTA, "non-accettazione")],
        ),
        entity: entity(&text, Some(&daticert), None),
        date,
    }
}

/// `detected` names what the antivirus found.
pub fn non_accettazione_virus(
    gestore: &Gestore,
    certified: &Certified,
    detected: &str,
    message_id: &str,
    date: PecTime,
) -> UnsignedMessage {
    let text = Text::new("Problema di sicurezza")
        .para(format!(
            "{} nel messaggio \"{}\" proveniente da \"{}\" è stato rilevato un problema di sicurezza: {}.",
            date.italian_phrase(),
            certified.oggetto,
            certified.mittente,
            detected
        ))
        .para("Il messaggio non è stato accettato.")
        .para(id_line(certified));
    let mut daticert = certified.daticert(Tipo::NonAccettazione, &gestore.name, date);
    daticert.errore = Errore::Virus;
    daticert.errore_esteso = Some(detected.to_string());
    UnsignedMessage {
        kind: MessageKind::NonAccettazioneVirus,
        headers: receipt_headers(
            gestore,
            &certified.mittente,
            subject::NON_ACCETTAZIONE_VIRUS,
            certified,
            message_id,
            date,
            &[
                (X_RICEVUTA, "non-accettazione"),
                (X_VERIFICA_SICUREZZA, VERIFICA_SICUREZZA_ERRORE),
            ],
        ),
        entity: entity(&text, Some(&daticert), None),
        date,
    }
}
