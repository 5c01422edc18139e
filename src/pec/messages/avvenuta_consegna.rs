//! Ricevuta di avvenuta consegna (pec-rules §3 #9, §7): one per recipient, after the
//! busta is stored in the mailbox. Completa carries the original, breve the original
//! with attachments replaced by hashes, sintetica only text and daticert.

use super::{entity, entity_enclosing, id_line, receipt_headers, Gestore, Text, UnsignedMessage};
use crate::pec::breve;
use crate::pec::daticert::{Tipo, TipoRicevuta};
use crate::pec::headers::{subject, X_RICEVUTA};
use crate::pec::kind::MessageKind;
use crate::pec::original::Certified;
use crate::pec::timestamp::PecTime;

/// The receipt a recipient's delivery yields: Cc recipients always get sintetica.
pub fn tipo_ricevuta_for(requested: Option<TipoRicevuta>, primary: bool) -> TipoRicevuta {
    if primary {
        requested.unwrap_or_default()
    } else {
        TipoRicevuta::Sintetica
    }
}

/// `original` is the postacert.eml of the delivered busta.
pub fn avvenuta_consegna(
    gestore: &Gestore,
    certified: &Certified,
    recipient: &str,
    tipo: TipoRicevuta,
    original: &[u8],
    message_id: &str,
    date: PecTime,
) -> UnsignedMessage {
    let owned = match tipo {
        TipoRicevuta::Completa => original.to_vec(),
        _ => Vec::new(),
    };
    avvenuta_consegna_owned(
        gestore, certified, recipient, tipo, original, owned, message_id, date,
    )
}

/// [`avvenuta_consegna`] where a completa is built in `owned`, a copy of `original`
/// the caller hands over (for its last recipient, the postacert.eml itself): no
/// further copy of a large original. `owned` is unused for breve and sintetica.
#[allow(clippy::too_many_arguments)]
pub fn avvenuta_consegna_owned(
    gestore: &Gestore,
    certified: &Certified,
    recipient: &str,
    tipo: TipoRicevuta,
    original: &[u8],
    owned: Vec<u8>,
    message_id: &str,
    date: PecTime,
) -> UnsignedMessage {
    let title = match tipo {
        TipoRicevuta::Completa => "Ricevuta di avvenuta consegna",
        TipoRicevuta::Breve => "Ricevuta breve di avvenuta consegna",
        TipoRicevuta::Sintetica => "Ricevuta sintetica di avvenuta consegna",
    };
    let mut text = Text::new(title)
        .para(format!(
            "{} il messaggio \"{}\" proveniente da \"{}\" ed indirizzato a \"{}\" è stato posto nella casella del destinatario.",
            date.italian_phrase(),
            certified.oggetto,
            certified.mittente,
            recipient
        ))
        .para(id_line(certified));
    let attached = match tipo {
        TipoRicevuta::Completa => Some(owned),
        TipoRicevuta::Breve => {
            text = text.para("Gli allegati del messaggio originale sono sostituiti dalla loro impronta SHA-1 (file .hash).");
            Some(breve::hash_attachments(original).unwrap_or_else(|| original.to_vec()))
        }
        TipoRicevuta::Sintetica => None,
    };
    let mut daticert = certified.daticert(Tipo::AvvenutaConsegna, &gestore.name, date);
    daticert.ricevuta = Some(tipo);
    daticert.consegna = Some(recipient.to_string());
    UnsignedMessage {
        kind: MessageKind::AvvenutaConsegna(tipo),
        headers: receipt_headers(
            gestore,
            &certified.mittente,
            subject::CONSEGNA,
            certified,
            message_id,
            date,
            &[(X_RICEVUTA, "avvenuta-consegna")],
        ),
        entity: match attached {
            // built in the copy's own buffer: no further copies of a large original
            Some(a) => entity_enclosing(&text, Some(&daticert), a).0,
            None => entity(&text, Some(&daticert), None),
        },
        date,
    }
}
