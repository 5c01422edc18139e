//! Avvisi di mancata consegna per superamento tempo massimo (pec-rules §8): the 12 h
//! preavviso and the 24 h final notice, from the sender's provider, one per recipient.
//! Both share X-Ricevuta and subject; the daticert's errore-esteso carries an enhanced
//! status code, 4.4.7 (transient) for 12 h and 5.4.7 (final) for 24 h, so a client can
//! tell them apart without reading the text.

use super::{entity, id_line, receipt_headers, Gestore, Text, UnsignedMessage};
use crate::pec::daticert::{Errore, Tipo};
use crate::pec::headers::{subject, X_RICEVUTA};
use crate::pec::kind::{MessageKind, TimeoutStage};
use crate::pec::original::Certified;
use crate::pec::timestamp::PecTime;

pub const ESTESO_12H: &str = "4.4.7 - messaggio non consegnato entro le prime 12 ore";
pub const ESTESO_24H: &str = "5.4.7 - messaggio non consegnato entro 24 ore";

/// `stage` must be `Preavviso12h` or `Definitivo24h` (`Unspecified` is treated as 24 h).
pub fn tempo_massimo(
    gestore: &Gestore,
    certified: &Certified,
    recipient: &str,
    stage: TimeoutStage,
    message_id: &str,
    date: PecTime,
) -> UnsignedMessage {
    let twelve = stage == TimeoutStage::Preavviso12h;
    let opening = format!(
        "{} nel messaggio \"{}\" proveniente da \"{}\" ed indirizzato a \"{}\"",
        date.italian_phrase(),
        certified.oggetto,
        certified.mittente,
        recipient
    );
    let text = if twelve {
        Text::new("Avviso di mancata consegna (preavviso)")
            .para(format!(
                "{opening} non è stata ricevuta, nelle prime 12 ore dall'invio, la ricevuta di avvenuta consegna."
            ))
            .para("Il messaggio potrebbe ancora essere consegnato, ma il mittente deve considerare che la consegna potrebbe non andare a buon fine. Se entro le successive 12 ore non sarà ricevuta la ricevuta di avvenuta consegna, seguirà un ulteriore avviso.")
    } else {
        Text::new("Avviso di mancata consegna")
            .para(format!(
                "{opening} non è stata ricevuta, entro 24 ore dall'invio, la ricevuta di avvenuta consegna."
            ))
            .para("La transazione è da considerarsi conclusa con esito negativo: il messaggio non risulta consegnato.")
    }
    .para(id_line(certified));
    let mut daticert = certified.daticert(Tipo::PreavvisoErroreConsegna, &gestore.name, date);
    daticert.errore = Errore::Altro;
    daticert.consegna = Some(recipient.to_string());
    daticert.errore_esteso = Some(if twelve { ESTESO_12H } else { ESTESO_24H }.to_string());
    let stage = if twelve {
        TimeoutStage::Preavviso12h
    } else {
        TimeoutStage::Definitivo24h
    };
    UnsignedMessage {
        kind: MessageKind::SuperamentoTempoMassimo(stage),
        headers: receipt_headers(
            gestore,
            &certified.mittente,
            subject::TEMPO_MASSIMO,
            certified,
            message_id,
            date,
            &[(X_RICEVUTA, "preavviso-errore-consegna")],
        ),
        entity: entity(&text, Some(&daticert), None),
        date,
    }
}
