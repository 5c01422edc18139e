//! Punto di accesso (pec-rules §5): the formal checks on a holder's submission, then the
//! ricevuta di accettazione and the signed busta di trasporto, or the avviso di non
//! accettazione with the reason.

use super::writes::{by_domain, message_id_of, queue_entry, Msg, Write};
use super::{unix_now, CoreError, Provider};
use crate::pec::messages;
use crate::pec::original::{rewrite_message_id_owned, Certified, OriginalHeaders};
use crate::registro::{Event, EventKind};
use crate::store::{TrackedRecipient, Transaction, INBOX, SENT};

/// The outcome the SMTP adapter reports to the holder's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    Accepted {
        identificativo: String,
    },
    /// Not admitted; the avviso di non accettazione is in the holder's mailbox.
    Refused {
        reason: String,
    },
}

/// Why a submission fails the formal checks of RFC 6109 §3.1.1.
pub fn formal_check(
    sender: &str,
    mail_from: &str,
    rcpt_to: &[String],
    headers: Option<&OriginalHeaders>,
    size: usize,
    max_bytes: u64,
    max_recipients: usize,
) -> Result<(), String> {
    let Some(h) = headers else {
        return Err("messaggio non conforme allo standard RFC 5322".into());
    };
    if !mail_from.eq_ignore_ascii_case(sender) {
        return Err(format!(
            "mittente SMTP {mail_from} diverso dalla casella autenticata {sender}"
        ));
    }
    match h.from.as_slice() {
        [] => return Err("intestazione From assente o non valida".into()),
        [one] if one.eq_ignore_ascii_case(sender) => {}
        [one] => {
            return Err(format!(
                "indirizzo From {one} diverso dal mittente {sender}"
            ))
        }
        _ => return Err("l'intestazione From contiene più di un indirizzo".into()),
    }
    if h.sender.iter().any(|s| !s.eq_ignore_ascii_case(sender)) {
        return Err("intestazione Sender diversa da From".into());
    }
    if h.to.is_empty() {
        return Err("intestazione To assente o senza destinatari validi".into());
    }
    if h.has_bcc_field {
        return Err("presenza di destinatari in copia nascosta (Bcc)".into());
    }
    for rcpt in rcpt_to {
        let listed =
            h.to.iter()
                .chain(&h.cc)
                .any(|a| a.eq_ignore_ascii_case(rcpt));
        if !listed {
            return Err(format!(
                "il destinatario {rcpt} non compare nelle intestazioni To o Cc"
            ));
        }
    }
    if rcpt_to.len() > max_recipients {
        return Err(format!(
            "numero di destinatari {} superiore al massimo di {max_recipients}",
            rcpt_to.len()
        ));
    }
    let total = size as u64 * rcpt_to.len().max(1) as u64;
    if total > max_bytes {
        return Err(format!(
            "dimensione del messaggio per numero di destinatari ({total} byte) superiore al limite di {max_bytes} byte"
        ));
    }
    Ok(())
}

impl Provider {
    /// A message submitted by the authenticated holder `sender`.
    pub fn submit(
        &self,
        sender: &str,
        mail_from: &str,
        rcpt_to: &[String],
        message: Vec<u8>,
    ) -> Result<Submission, CoreError> {
        let time = self.now();
        let identificativo = self.new_id("msg")?;
        let headers = OriginalHeaders::parse(&message);
        let certified = headers
            .as_ref()
            .map(|h| h.certify(&identificativo, |a| self.recipient_tipo(a)))
            .unwrap_or_else(|| Certified {
                mittente: sender.to_string(),
                destinatari: Vec::new(),
                risposte: String::new(),
                oggetto: String::new(),
                identificativo: identificativo.clone(),
                msgid: None,
            });

        let checked = formal_check(
            sender,
            mail_from,
            rcpt_to,
            headers.as_ref(),
            message.len(),
            self.config.delivery.max_message_bytes,
            self.config.delivery.max_recipients,
        );
        let headers = match (checked, headers) {
            (Ok(()), Some(h)) => h,
            (checked, _) => {
                let reason = checked
                    .err()
                    .unwrap_or_else(|| "messaggio non conforme allo standard RFC 5322".into());
                return self.refuse(sender, rcpt_to, certified, reason, time);
            }
        };

        // One buffer from DATA to the signed busta: the Message-ID rewritten, the busta
        // built around the original, the signature wrapped around the busta, each in
        // place; the Sent copy is the original's range inside it.
        let original =
            rewrite_message_id_owned(message, &identificativo, headers.message_id.as_deref());
        let accettazione =
            messages::accettazione(&self.gestore, &certified, &self.new_id("rcpt")?, time);
        let (busta, enclosed) = messages::busta_trasporto_owned(
            &self.gestore,
            &certified,
            original,
            headers.tipo_ricevuta,
            time,
        );
        let (busta, offset) = self.sign_owned(busta)?;
        let busta = std::sync::Arc::new(busta);
        let original = Msg::Slice(
            busta.clone(),
            offset + enclosed.start..offset + enclosed.end,
        );
        let busta = Msg::Shared(busta);

        let accettazione_id = message_id_of(&accettazione);
        let accettazione = self.sign(&accettazione)?;
        let event = |kind, outcome: &str| {
            Event::new(kind, outcome)
                .identificativo(&identificativo)
                .original_message_id(certified.msgid.as_deref())
                .sender(sender)
                .recipients(rcpt_to)
                .subject(&certified.oggetto)
                .provider(&self.gestore.name)
                .at(&time)
        };
        let mut writes = vec![
            Write::Log(
                event(EventKind::Accettazione, "ok").message_id(accettazione_id),
                Some(accettazione.clone().into()),
            ),
            Write::Log(
                event(EventKind::BustaEmessa, "queued").message_id(&identificativo),
                None,
            ),
            Write::Append {
                address: sender.to_string(),
                folder: INBOX.into(),
                message: accettazione.into(),
            },
        ];
        if self.config.delivery.save_sent {
            writes.push(Write::Append {
                address: sender.to_string(),
                folder: SENT.into(),
                message: original.clone(),
            });
        }
        for (domain, rcpts) in by_domain(rcpt_to) {
            writes.push(Write::Enqueue {
                entry: queue_entry(&domain, sender, &rcpts, format!("busta {identificativo}")),
                message: busta.clone(),
            });
        }
        writes.push(Write::PutTransaction(Transaction {
            identificativo: identificativo.clone(),
            sender: sender.to_string(),
            subject: certified.oggetto.clone(),
            msgid: certified.msgid.clone(),
            accepted: time.utc().timestamp().min(unix_now()),
            recipients: rcpt_to
                .iter()
                .map(|a| TrackedRecipient {
                    address: a.clone(),
                    certified: self.recipient_tipo(a)
                        == crate::pec::daticert::TipoDestinatario::Certificato,
                    presa_in_carico: None,
                    consegna: None,
                    failed: None,
                    notice_12h: None,
                    notice_24h: None,
                })
                .collect(),
        }));
        self.apply(&writes)?;
        tracing::info!(sender, %identificativo, recipients = rcpt_to.len(), "accepted: accettazione and busta di trasporto");
        Ok(Submission::Accepted { identificativo })
    }

    /// The avviso di non accettazione, into the holder's own mailbox.
    fn refuse(
        &self,
        sender: &str,
        rcpt_to: &[String],
        mut certified: Certified,
        reason: String,
        time: crate::pec::timestamp::PecTime,
    ) -> Result<Submission, CoreError> {
        certified.mittente = sender.to_string();
        let notice = messages::non_accettazione(
            &self.gestore,
            &certified,
            &reason,
            &self.new_id("rcpt")?,
            time,
        );
        let notice_id = message_id_of(&notice);
        let notice = self.sign(&notice)?;
        let event = Event::new(EventKind::NonAccettazione, format!("refused: {reason}"))
            .identificativo(&certified.identificativo)
            .original_message_id(certified.msgid.as_deref())
            .message_id(notice_id)
            .sender(sender)
            .recipients(rcpt_to)
            .subject(&certified.oggetto)
            .provider(&self.gestore.name)
            .at(&time);
        self.apply(&[
            Write::Log(event, Some(notice.clone().into())),
            Write::Append {
                address: sender.to_string(),
                folder: INBOX.into(),
                message: notice.into(),
            },
        ])?;
        tracing::info!(sender, %reason, "submission refused: avviso di non accettazione");
        Ok(Submission::Refused { reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(raw: &str) -> OriginalHeaders {
        OriginalHeaders::parse(raw.as_bytes()).unwrap()
    }

    const OK: &str = "From: a@pec.x\r\nTo: b@pec.y\r\nCc: c@pec.y\r\nSubject: s\r\n\r\nbody\r\n";

    fn check(raw: &str, rcpts: &[&str]) -> Result<(), String> {
        let rcpts: Vec<String> = rcpts.iter().map(|s| s.to_string()).collect();
        formal_check(
            "a@pec.x",
            "a@pec.x",
            &rcpts,
            Some(&headers(raw)),
            raw.len(),
            1000,
            2,
        )
    }

    #[test]
    fn every_formal_rule() {
        assert_eq!(check(OK, &["b@pec.y", "C@pec.y"]), Ok(()));
        assert!(check(OK, &["d@pec.y"]).unwrap_err().contains("d@pec.y"));
        assert!(
            check(&OK.replace("From: a@pec.x", "From: z@pec.x"), &["b@pec.y"])
                .unwrap_err()
                .contains("From")
        );
        assert!(check(
            &OK.replace("Cc: c@pec.y\r\n", "Bcc: h@pec.y\r\n"),
            &["b@pec.y"]
        )
        .unwrap_err()
        .contains("Bcc"));
        assert!(
            check(&OK.replace("Cc: c@pec.y\r\n", "Bcc:\r\n"), &["b@pec.y"])
                .unwrap_err()
                .contains("Bcc"),
            "an empty Bcc field is refused too"
        );
        assert!(check(&OK.replace("To: b@pec.y\r\n", ""), &["c@pec.y"])
            .unwrap_err()
            .contains("To"));
        assert!(check(OK, &["b@pec.y", "c@pec.y", "b@pec.y"])
            .unwrap_err()
            .contains("massimo"));
        let big = format!("{OK}{}", "x".repeat(600));
        assert!(check(&big, &["b@pec.y", "c@pec.y"])
            .unwrap_err()
            .contains("dimensione"));
        let rcpts = vec!["b@pec.y".to_string()];
        assert!(formal_check(
            "a@pec.x",
            "q@pec.x",
            &rcpts,
            Some(&headers(OK)),
            10,
            1000,
            5
        )
        .unwrap_err()
        .contains("mittente SMTP"));
        assert!(formal_check("a@pec.x", "a@pec.x", &rcpts, None, 10, 1000, 5).is_err());
    }
}
