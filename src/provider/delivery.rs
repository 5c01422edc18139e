//! Punto di consegna (pec-rules §7): the busta goes into each recipient's mailbox and,
//! only once stored, the ricevuta di avvenuta consegna (completa, breve or sintetica as
//! requested; Cc recipients get sintetica) goes back to the sender; a recipient that
//! cannot receive gets an avviso di mancata consegna instead.

use super::writes::{by_domain, message_id_of, queue_entry, Msg, Write};
use super::{CoreError, Provider};
use crate::pec::classify::Classification;
use crate::pec::daticert::{Errore, TipoRicevuta};
use crate::pec::messages::{self, tipo_ricevuta_for};
use crate::pec::original::{Certified, OriginalHeaders};
use crate::pec::timestamp::PecTime;
use crate::registro::{Event, EventKind};
use crate::store::INBOX;

/// Why a recipient cannot receive.
enum Undeliverable {
    NoMailbox,
    OverQuota { used: u64, quota: u64 },
    Disabled,
}

impl Provider {
    #[allow(clippy::too_many_arguments)] // the step's inputs, each used once
    pub(crate) fn deliver_busta<'a>(
        &self,
        busta: &'a [u8],
        class: &Classification,
        postacert: Option<Vec<u8>>,
        certified: &Certified,
        mail_from: &str,
        rcpt_to: &[String],
        writes: &mut Vec<Write<'a>>,
    ) -> Result<(), CoreError> {
        let mut postacert = postacert.unwrap_or_default();
        let original_headers = OriginalHeaders::parse(&postacert).unwrap_or_default();
        let requested = class
            .daticert
            .as_ref()
            .and_then(|d| d.ricevuta)
            .or(original_headers.tipo_ricevuta);
        let tipo_for = |rcpt: &str| tipo_ricevuta_for(requested, original_headers.is_primary(rcpt));
        // Receipts that still need the original after this one: the last one that does
        // is built in the postacert's own buffer instead of a copy.
        let mut later_needs = rcpt_to
            .iter()
            .filter(|r| tipo_for(r) != TipoRicevuta::Sintetica)
            .count();
        let mut receipts: Vec<(String, Msg<'a>)> = Vec::new();
        for rcpt in rcpt_to {
            let tipo = tipo_for(rcpt);
            if tipo != TipoRicevuta::Sintetica {
                later_needs -= 1;
            }
            let time = self.now();
            let receipt = match self.undeliverable(rcpt, busta.len() as u64)? {
                None => {
                    writes.push(Write::Append {
                        address: rcpt.clone(),
                        folder: INBOX.into(),
                        message: busta.into(),
                    });
                    let owned = match tipo {
                        TipoRicevuta::Completa if later_needs == 0 => {
                            std::mem::take(&mut postacert)
                        }
                        TipoRicevuta::Completa => postacert.clone(),
                        _ => Vec::new(),
                    };
                    self.consegna(certified, rcpt, tipo, &postacert, owned, time)?
                }
                Some(why) => self.mancata_consegna(certified, rcpt, why, time)?,
            };
            let receipt_id = message_id_of(&receipt);
            let kind = if receipt.kind == crate::pec::kind::MessageKind::MancataConsegna {
                EventKind::MancataConsegnaEmessa
            } else {
                EventKind::ConsegnaEmessa
            };
            let code = receipt.kind.code();
            let signed = Msg::from(self.sign_owned(receipt)?.0);
            writes.push(Write::Log(
                Event::new(kind, code)
                    .identificativo(&certified.identificativo)
                    .original_message_id(certified.msgid.as_deref())
                    .message_id(receipt_id)
                    .sender(&certified.mittente)
                    .recipients(std::slice::from_ref(rcpt))
                    .subject(&certified.oggetto)
                    .provider(&self.gestore.name)
                    .at(&time),
                Some(signed.clone()),
            ));
            receipts.push((rcpt.clone(), signed));
        }
        // One receipt per recipient, to the reverse path of the busta (pec-rules §2.2).
        for (rcpt, receipt) in receipts {
            for (domain, to) in by_domain(&[mail_from.to_string()]) {
                writes.push(Write::Enqueue {
                    entry: queue_entry(
                        &domain,
                        &self.gestore.service_address,
                        &to,
                        format!("ricevuta {} for {rcpt}", certified.identificativo),
                    ),
                    message: receipt.clone(),
                });
            }
        }
        Ok(())
    }

    fn undeliverable(&self, rcpt: &str, size: u64) -> Result<Option<Undeliverable>, CoreError> {
        let Some(mailbox) = self.store.mailbox(rcpt)? else {
            return Ok(Some(Undeliverable::NoMailbox));
        };
        if mailbox.disabled {
            return Ok(Some(Undeliverable::Disabled));
        }
        if let Some(quota) = mailbox.quota {
            let used = self.store.usage(rcpt)?;
            if used + size > quota {
                return Ok(Some(Undeliverable::OverQuota { used, quota }));
            }
        }
        Ok(None)
    }

    fn consegna(
        &self,
        certified: &Certified,
        rcpt: &str,
        tipo: TipoRicevuta,
        original: &[u8],
        owned: Vec<u8>,
        time: PecTime,
    ) -> Result<messages::UnsignedMessage, CoreError> {
        Ok(messages::avvenuta_consegna_owned(
            &self.gestore,
            certified,
            rcpt,
            tipo,
            original,
            owned,
            &self.new_id("rcpt")?,
            time,
        ))
    }

    fn mancata_consegna(
        &self,
        certified: &Certified,
        rcpt: &str,
        why: Undeliverable,
        time: PecTime,
    ) -> Result<messages::UnsignedMessage, CoreError> {
        let name = &self.gestore.name;
        let (errore, detail) = match why {
            Undeliverable::NoMailbox => (
                Errore::NoDest,
                format!("5.1.1 - {name} - indirizzo non valido"),
            ),
            Undeliverable::Disabled => (
                Errore::NoDest,
                format!("5.2.1 - {name} - casella disabilitata"),
            ),
            Undeliverable::OverQuota { used, quota } => (
                Errore::Altro,
                format!("5.2.2 - {name} - casella piena ({used} di {quota} byte)"),
            ),
        };
        tracing::info!(rcpt, %detail, "avviso di mancata consegna");
        Ok(messages::mancata_consegna(
            &self.gestore,
            certified,
            rcpt,
            errore,
            &detail,
            &self.new_id("rcpt")?,
            time,
        ))
    }
}
