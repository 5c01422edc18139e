//! Punto di ricezione (pec-rules §6): what arrives on the `smtp` listener (and what the
//! outbound queue hands over for our own domains). Checks the signature against the
//! providers' index, answers a valid busta with the ricevuta di presa in carico and
//! passes it to the punto di consegna; passes other providers' receipts to the
//! holders; wraps what cannot be certified in a busta di anomalia; applies the
//! ordinary-mail policy to the rest.

use ring::digest;

use super::writes::{by_domain, message_id_of, queue_entry, Applied, Msg, Tracked, Write};
use super::{CoreError, Provider};
use crate::pec::classify::{classify_in_place, Class, Classification};
use crate::pec::kind::MessageKind;
use crate::pec::messages;
use crate::pec::original::{field_name, field_value, find_header_end, header_fields, Certified};
use crate::registro::{Event, EventKind};
use crate::smime::{self, SmimeError, VerifyOptions};
use crate::store::{OrdinaryMailPolicy, ProviderEntry, INBOX};

/// The answer to the sending server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Accepted,
    Refused {
        code: u16,
        enhanced: &'static str,
        text: String,
    },
}

/// Who signed a received message, as far as the providers' index can tell.
#[derive(Debug)]
pub(crate) enum Origin {
    Provider(ProviderEntry),
    NotSigned,
    UnknownSigner(String),
    Invalid(String),
}

impl Origin {
    fn describe(&self) -> String {
        match self {
            Origin::Provider(p) => format!("firmato da {}", p.name),
            Origin::NotSigned => "messaggio privo di firma del gestore".into(),
            Origin::UnknownSigner(who) => {
                format!("firma di un soggetto non presente nell'indice dei gestori ({who})")
            }
            Origin::Invalid(why) => format!("firma non valida ({why})"),
        }
    }
}

impl Provider {
    /// Existence, origin and validity of the signature (pec-rules §6.2 steps 1–3).
    pub(crate) fn origin(&self, message: &[u8]) -> Origin {
        let providers = match self.store.providers() {
            Ok(p) => p,
            Err(e) => return Origin::Invalid(format!("providers' index unreadable: {e}")),
        };
        let anchors: Vec<Vec<u8>> = providers
            .iter()
            .flat_map(|p| p.certificates.iter().cloned())
            .collect();
        let options = VerifyOptions {
            anchors,
            at: Some(chrono::Utc::now()),
        };
        let verification = match smime::verify_message(message, &options) {
            Ok(v) => v,
            Err(SmimeError::NotSigned) => return Origin::NotSigned,
            Err(e) => return Origin::Invalid(e.to_string()),
        };
        let Some(signer) = verification.signer.as_ref() else {
            return Origin::Invalid("no signer certificate".into());
        };
        let entry = providers.into_iter().find(|p| {
            p.certificate_hashes
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&signer.sha1_hex))
        });
        let Some(entry) = entry else {
            return Origin::UnknownSigner(signer.subject.clone());
        };
        if !entry.certificates.contains(&signer.der) {
            return Origin::Invalid("certificate differs from the index".into());
        }
        if !verification.is_valid() {
            return Origin::Invalid(verification.problems().join("; "));
        }
        Origin::Provider(entry)
    }

    /// A message for our domains: `rcpt_to` were accepted at RCPT time.
    pub fn receive(
        &self,
        mail_from: &str,
        rcpt_to: &[String],
        message: &[u8],
    ) -> Result<Inbound, CoreError> {
        let origin = self.origin(message);
        let mut class = classify_in_place(message);
        // Only a busta's original is needed (it becomes the completa): copied out once,
        // after classification has let go of its own buffers.
        let postacert = match class.class {
            Class::Pec(MessageKind::BustaTrasporto) => class.postacert.take().or_else(|| {
                class
                    .postacert_range
                    .clone()
                    .and_then(|r| message.get(r))
                    .map(<[u8]>::to_vec)
            }),
            _ => None,
        };
        let mut writes = vec![Write::Claim(dedupe_key(mail_from, rcpt_to, message))];
        let outcome = match (&origin, &class.class) {
            (Origin::Provider(entry), Class::Pec(MessageKind::BustaTrasporto)) => self
                .busta_received(
                    entry,
                    mail_from,
                    rcpt_to,
                    message,
                    &class,
                    postacert,
                    &mut writes,
                )?,
            (Origin::Provider(_), Class::Pec(MessageKind::BustaAnomalia)) => {
                self.deliver_unchanged(rcpt_to, message, &mut writes)?
            }
            (Origin::Provider(entry), Class::Pec(kind)) => {
                self.receipt_received(*kind, &entry.name, rcpt_to, message, &class, &mut writes)?
            }
            (Origin::Provider(entry), _) => self.anomalia(
                rcpt_to,
                message,
                &format!(
                    "messaggio firmato da {} non conforme alle regole tecniche: {}",
                    entry.name, class.reason
                ),
                &mut writes,
            )?,
            (_, Class::Pec(_) | Class::Malformed) => {
                self.anomalia(rcpt_to, message, &origin.describe(), &mut writes)?
            }
            (_, Class::Ordinary) => self.ordinary(rcpt_to, message, &mut writes)?,
        };
        if let Inbound::Refused { code, text, .. } = &outcome {
            let mut event =
                Event::new(EventKind::PostaOrdinariaRifiutata, format!("{code} {text}"))
                    .sender(mail_from)
                    .recipients(rcpt_to);
            if let Some(id) = &class.message_id {
                event = event.message_id(id);
            }
            if let Some(subject) = &class.subject {
                event = event.subject(subject);
            }
            self.apply(&[Write::Log(event, None)])?;
            return Ok(outcome);
        }
        if self.apply(&writes)? == Applied::AlreadyProcessed {
            tracing::info!(
                mail_from,
                "already processed: accepted again without effects"
            );
        }
        Ok(Inbound::Accepted)
    }

    #[allow(clippy::too_many_arguments)] // the step's inputs, each used once
    fn busta_received<'a>(
        &self,
        entry: &ProviderEntry,
        mail_from: &str,
        rcpt_to: &[String],
        busta: &'a [u8],
        class: &Classification,
        postacert: Option<Vec<u8>>,
        writes: &mut Vec<Write<'a>>,
    ) -> Result<Inbound, CoreError> {
        let Some(daticert) = class.daticert.as_ref() else {
            return Ok(Inbound::Refused {
                code: 554,
                enhanced: "5.6.0",
                text: "busta di trasporto without daticert.xml".into(),
            });
        };
        let certified = Certified::from_daticert(daticert);
        let time = self.now();
        let presa = messages::presa_in_carico(
            &self.gestore,
            &certified,
            rcpt_to,
            &entry.mail_receipt,
            &self.new_id("rcpt")?,
            time,
        );
        let presa_id = message_id_of(&presa);
        let presa = Msg::from(self.sign(&presa)?);
        let event = |kind, outcome: &str| {
            Event::new(kind, outcome)
                .identificativo(&certified.identificativo)
                .original_message_id(certified.msgid.as_deref())
                .sender(&certified.mittente)
                .recipients(rcpt_to)
                .subject(&certified.oggetto)
                .provider(&entry.name)
                .at(&time)
        };
        writes.push(Write::Log(
            event(EventKind::BustaRicevuta, "ok").message_id(&certified.identificativo),
            None,
        ));
        writes.push(Write::Log(
            event(EventKind::PresaInCaricoEmessa, "queued")
                .message_id(presa_id)
                .detail(format!("to {}", entry.mail_receipt)),
            Some(presa.clone()),
        ));
        for (domain, rcpts) in by_domain(std::slice::from_ref(&entry.mail_receipt)) {
            writes.push(Write::Enqueue {
                entry: queue_entry(
                    &domain,
                    &self.gestore.service_address,
                    &rcpts,
                    format!("presa in carico {}", certified.identificativo),
                ),
                message: presa.clone(),
            });
        }
        self.deliver_busta(
            busta, class, postacert, &certified, mail_from, rcpt_to, writes,
        )?;
        tracing::info!(
            identificativo = %certified.identificativo,
            from = %entry.name,
            recipients = rcpt_to.len(),
            "busta di trasporto taken in charge"
        );
        Ok(Inbound::Accepted)
    }

    fn receipt_received<'a>(
        &self,
        kind: MessageKind,
        provider: &str,
        rcpt_to: &[String],
        message: &'a [u8],
        class: &Classification,
        writes: &mut Vec<Write<'a>>,
    ) -> Result<Inbound, CoreError> {
        let daticert = class.daticert.as_ref();
        let identificativo = daticert.map(|d| d.identificativo.clone());
        let service = &self.gestore.service_address;
        match (kind, daticert, identificativo) {
            (MessageKind::PresaInCarico, Some(d), Some(id)) => {
                for address in &d.ricezione {
                    writes.push(Write::Track {
                        identificativo: id.clone(),
                        address: address.clone(),
                        change: Tracked::PresaInCarico,
                    });
                }
            }
            (MessageKind::RilevazioneVirus, Some(d), Some(id)) => {
                if let (Some(rcpt), Some(tx)) = (&d.consegna, self.store.transaction(&id)?) {
                    let time = self.now();
                    let notice = messages::mancata_consegna_virus(
                        &self.gestore,
                        &Certified::from_daticert(d),
                        rcpt,
                        d.errore_esteso.as_deref().unwrap_or("virus"),
                        &self.new_id("rcpt")?,
                        time,
                    );
                    let notice_id = message_id_of(&notice);
                    let notice = self.sign(&notice)?;
                    writes.push(Write::Log(
                        Event::new(EventKind::MancataConsegnaEmessa, "virus")
                            .identificativo(&id)
                            .message_id(notice_id)
                            .sender(&tx.sender)
                            .recipients(std::slice::from_ref(rcpt))
                            .subject(&tx.subject)
                            .at(&time),
                        Some(notice.clone().into()),
                    ));
                    writes.push(Write::Append {
                        address: tx.sender.clone(),
                        folder: INBOX.into(),
                        message: notice.into(),
                    });
                    writes.push(Write::Track {
                        identificativo: id,
                        address: rcpt.clone(),
                        change: Tracked::Failed,
                    });
                }
            }
            (
                MessageKind::AvvenutaConsegna(_)
                | MessageKind::MancataConsegna
                | MessageKind::MancataConsegnaVirus,
                Some(d),
                Some(id),
            ) => {
                if let Some(rcpt) = &d.consegna {
                    writes.push(Write::Track {
                        identificativo: id,
                        address: rcpt.clone(),
                        change: if matches!(kind, MessageKind::AvvenutaConsegna(_)) {
                            Tracked::Consegna
                        } else {
                            Tracked::Failed
                        },
                    });
                }
            }
            _ => {}
        }
        let kind_logged = match kind {
            MessageKind::PresaInCarico => EventKind::PresaInCaricoRicevuta,
            MessageKind::AvvenutaConsegna(_) => EventKind::ConsegnaRicevuta,
            MessageKind::MancataConsegna
            | MessageKind::MancataConsegnaVirus
            | MessageKind::SuperamentoTempoMassimo(_) => EventKind::MancataConsegnaRicevuta,
            MessageKind::RilevazioneVirus => EventKind::RilevazioneVirusRicevuta,
            _ => EventKind::Anomalia,
        };
        let mut event = Event::new(kind_logged, format!("received: {}", kind.code()))
            .recipients(rcpt_to)
            .provider(provider);
        if let Some(d) = daticert {
            event = event
                .identificativo(&d.identificativo)
                .sender(&d.mittente)
                .subject(d.oggetto.clone().unwrap_or_default());
            let concerned: Vec<String> = d
                .consegna
                .iter()
                .cloned()
                .chain(d.ricezione.iter().cloned())
                .collect();
            event = event.detail(format!("per {}", concerned.join(", ")));
        }
        if let Some(id) = &class.message_id {
            event = event.message_id(id);
        }
        writes.push(Write::Log(event, None));
        // Receipts for holders go to their mailbox; the service mailbox keeps the rest.
        for rcpt in rcpt_to {
            let target = match self.store.mailbox(rcpt)? {
                Some(_) => rcpt.clone(),
                None => service.clone(),
            };
            writes.push(Write::Append {
                address: target,
                folder: INBOX.into(),
                message: message.into(),
            });
        }
        Ok(Inbound::Accepted)
    }

    fn deliver_unchanged<'a>(
        &self,
        rcpt_to: &[String],
        message: &'a [u8],
        writes: &mut Vec<Write<'a>>,
    ) -> Result<Inbound, CoreError> {
        if let Some(refused) = self.unknown_mailbox(rcpt_to)? {
            return Ok(refused);
        }
        for rcpt in rcpt_to {
            writes.push(Write::Append {
                address: rcpt.clone(),
                folder: INBOX.into(),
                message: message.into(),
            });
        }
        Ok(Inbound::Accepted)
    }

    /// Wraps the received message in a busta di anomalia for every recipient.
    fn anomalia<'a>(
        &self,
        rcpt_to: &[String],
        message: &'a [u8],
        reason: &str,
        writes: &mut Vec<Write<'a>>,
    ) -> Result<Inbound, CoreError> {
        if let Some(refused) = self.unknown_mailbox(rcpt_to)? {
            return Ok(refused);
        }
        let time = self.now();
        let wrapped = messages::busta_anomalia(
            &self.gestore,
            message,
            reason,
            &self.new_id("anomalia")?,
            time,
        );
        let wrapped_id = message_id_of(&wrapped);
        let wrapped = Msg::from(self.sign(&wrapped)?);
        writes.push(Write::Log(
            Event::new(EventKind::Anomalia, reason)
                .message_id(wrapped_id)
                .recipients(rcpt_to)
                .detail("busta di anomalia")
                .at(&time),
            Some(wrapped.clone()),
        ));
        for rcpt in rcpt_to {
            writes.push(Write::Append {
                address: rcpt.clone(),
                folder: INBOX.into(),
                message: wrapped.clone(),
            });
        }
        tracing::info!(%reason, recipients = rcpt_to.len(), "busta di anomalia");
        Ok(Inbound::Accepted)
    }

    /// Ordinary mail: every recipient's policy must let it in, or the whole message is
    /// refused (one SMTP answer covers all recipients, and nothing may vanish silently).
    fn ordinary<'a>(
        &self,
        rcpt_to: &[String],
        message: &'a [u8],
        writes: &mut Vec<Write<'a>>,
    ) -> Result<Inbound, CoreError> {
        if let Some(refused) = self.unknown_mailbox(rcpt_to)? {
            return Ok(refused);
        }
        let mut policies = Vec::new();
        for rcpt in rcpt_to {
            let policy = self
                .store
                .mailbox(rcpt)?
                .map(|m| m.ordinary_mail)
                .unwrap_or_default();
            if policy == OrdinaryMailPolicy::Refuse {
                return Ok(Inbound::Refused {
                    code: 550,
                    enhanced: "5.7.1",
                    text: format!(
                        "{rcpt} is a PEC mailbox and does not accept ordinary mail (casella PEC: posta ordinaria non accettata)"
                    ),
                });
            }
            policies.push((rcpt, policy));
        }
        let anomalia_rcpts: Vec<String> = policies
            .iter()
            .filter(|(_, p)| *p == OrdinaryMailPolicy::Anomalia)
            .map(|(r, _)| (*r).clone())
            .collect();
        if !anomalia_rcpts.is_empty() {
            self.anomalia(
                &anomalia_rcpts,
                message,
                "messaggio di posta ordinaria, non certificato",
                writes,
            )?;
        }
        for (rcpt, policy) in &policies {
            if let OrdinaryMailPolicy::Forward(to) = policy {
                for (domain, rcpts) in by_domain(std::slice::from_ref(to)) {
                    writes.push(Write::Enqueue {
                        entry: queue_entry(
                            &domain,
                            &self.gestore.service_address,
                            &rcpts,
                            format!("forward ordinary mail for {rcpt}"),
                        ),
                        message: message.into(),
                    });
                }
            }
        }
        Ok(Inbound::Accepted)
    }

    fn unknown_mailbox(&self, rcpt_to: &[String]) -> Result<Option<Inbound>, CoreError> {
        for rcpt in rcpt_to {
            match self.store.mailbox(rcpt)? {
                Some(m) if !m.disabled || m.address == self.gestore.service_address => {}
                _ => {
                    return Ok(Some(Inbound::Refused {
                        code: 550,
                        enhanced: "5.1.1",
                        text: format!("{rcpt}: no such mailbox"),
                    }))
                }
            }
        }
        Ok(None)
    }
}

/// The same message to the same recipients is processed once, even when the sender
/// retries after a crash that lost our 250.
fn dedupe_key(mail_from: &str, rcpt_to: &[String], message: &[u8]) -> String {
    let mut rcpts: Vec<String> = rcpt_to.iter().map(|r| r.to_ascii_lowercase()).collect();
    rcpts.sort();
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(mail_from.to_ascii_lowercase().as_bytes());
    ctx.update(b"\0");
    ctx.update(rcpts.join(",").as_bytes());
    ctx.update(b"\0");
    let crlf = crate::pec::mime::crlf_bytes(message);
    let head_end = find_header_end(&crlf);
    let message_id = header_fields(&crlf[..head_end])
        .into_iter()
        .find(|f| field_name(f).eq_ignore_ascii_case("Message-ID"))
        .map(field_value);
    match message_id {
        Some(id) => ctx.update(id.as_bytes()),
        // Without a Message-ID, the body identifies the message (our Received line is not in it).
        None => ctx.update(&crlf[head_end..]),
    }
    format!("rx:{}", crate::pec::mime::hex(ctx.finish().as_ref()))
}
