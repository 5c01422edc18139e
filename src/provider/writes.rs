//! Everything one step of the provider changes, applied in a single store transaction
//! and made durable before the step reports success.

use super::{unix_now, CoreError, Provider};
use crate::registro::{self, Event};
use crate::store::{QueueEntry, QueuedRecipient, RecipientState, Transaction};

/// A message a step stores: the bytes it was handed (a received message, delivered to
/// several recipients without a copy) or bytes it made, shared by every write that
/// stores them (a busta queued for several domains).
#[derive(Clone)]
pub(crate) enum Msg<'a> {
    Borrowed(&'a [u8]),
    Shared(std::sync::Arc<Vec<u8>>),
    /// Part of a shared buffer: the original inside its signed busta.
    Slice(std::sync::Arc<Vec<u8>>, std::ops::Range<usize>),
}

impl std::ops::Deref for Msg<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Msg::Borrowed(b) => b,
            Msg::Shared(v) => v,
            Msg::Slice(v, range) => v.get(range.clone()).unwrap_or_default(),
        }
    }
}

impl From<Vec<u8>> for Msg<'_> {
    fn from(v: Vec<u8>) -> Self {
        Msg::Shared(std::sync::Arc::new(v))
    }
}

impl<'a> From<&'a [u8]> for Msg<'a> {
    fn from(b: &'a [u8]) -> Self {
        Msg::Borrowed(b)
    }
}

pub(crate) enum Write<'a> {
    /// Processes a received message once: if the key was claimed before, nothing is written.
    Claim(String),
    Append {
        address: String,
        folder: String,
        message: Msg<'a>,
    },
    Enqueue {
        entry: QueueEntry,
        message: Msg<'a>,
    },
    PutTransaction(Transaction),
    Track {
        identificativo: String,
        address: String,
        change: Tracked,
    },
    Dequeue(u64),
    UpdateQueue(QueueEntry),
    /// A record of the registro dei log, with a copy of the message it emitted.
    Log(Event, Option<Msg<'a>>),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Tracked {
    PresaInCarico,
    Consegna,
    Failed,
    Notice12h,
    Notice24h,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Done,
    AlreadyProcessed,
}

impl Provider {
    pub(crate) fn apply(&self, writes: &[Write<'_>]) -> Result<Applied, CoreError> {
        let now = unix_now();
        let instant = chrono::Utc::now();
        let log_trees = [self.registro.tree().clone()];
        // Compressing outside the transaction: its closure may run more than once.
        let receipts: Vec<Option<Vec<u8>>> = writes
            .iter()
            .map(|w| match w {
                Write::Log(_, Some(bytes)) => self.registro.stage_receipt(bytes).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        let applied = self.store.atomically_with(&log_trees, |t, log| {
            for w in writes {
                if let Write::Claim(key) = w {
                    if !t.claim(key)? {
                        return Ok(Applied::AlreadyProcessed);
                    }
                }
            }
            for (w, receipt) in writes.iter().zip(&receipts) {
                match w {
                    Write::Claim(_) => {}
                    Write::Log(event, _) => {
                        registro::append_in(&log[0], event, instant, receipt.as_deref())
                            .map_err(|e| t.absorb(e))?;
                    }
                    Write::Append {
                        address,
                        folder,
                        message,
                    } => {
                        t.append(address, folder, message, &[], now)?;
                    }
                    Write::Enqueue { entry, message } => {
                        t.enqueue(entry, message)?;
                    }
                    Write::PutTransaction(tx) => t.put_transaction(tx)?,
                    Write::Track {
                        identificativo,
                        address,
                        change,
                    } => {
                        if let Some(mut tx) = t.transaction(identificativo)? {
                            for r in tx
                                .recipients
                                .iter_mut()
                                .filter(|r| r.address.eq_ignore_ascii_case(address))
                            {
                                let slot = match change {
                                    Tracked::PresaInCarico => &mut r.presa_in_carico,
                                    Tracked::Consegna => &mut r.consegna,
                                    Tracked::Failed => &mut r.failed,
                                    Tracked::Notice12h => &mut r.notice_12h,
                                    Tracked::Notice24h => &mut r.notice_24h,
                                };
                                slot.get_or_insert(now);
                            }
                            t.put_transaction(&tx)?;
                        }
                    }
                    Write::Dequeue(id) => {
                        t.dequeue(*id)?;
                    }
                    Write::UpdateQueue(entry) => t.update_queue(entry)?,
                }
            }
            Ok(Applied::Done)
        })?;
        if applied == Applied::Done {
            self.store.flush()?;
            if writes.iter().any(|w| matches!(w, Write::Enqueue { .. })) {
                self.queue_wakeup.notify_one();
            }
        }
        Ok(applied)
    }
}

/// A queue entry for `recipients` (all of one domain).
pub(crate) fn queue_entry(
    domain: &str,
    mail_from: &str,
    recipients: &[String],
    label: String,
) -> QueueEntry {
    let now = unix_now();
    QueueEntry {
        id: 0,
        domain: domain.to_ascii_lowercase(),
        mail_from: mail_from.to_string(),
        recipients: recipients
            .iter()
            .map(|a| QueuedRecipient {
                address: a.clone(),
                state: RecipientState::Pending,
                last_reply: None,
            })
            .collect(),
        created: now,
        attempts: 0,
        next_attempt: now,
        label,
    }
}

/// Groups addresses by domain (lower-cased), keeping their order.
pub(crate) fn by_domain(addresses: &[String]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for a in addresses {
        let domain = super::domain_of(a).unwrap_or("").to_ascii_lowercase();
        match groups.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, list)) => list.push(a.clone()),
            None => groups.push((domain, vec![a.clone()])),
        }
    }
    groups
}

/// The Message-ID of a generated message, without brackets.
pub(crate) fn message_id_of(message: &crate::pec::messages::UnsignedMessage) -> String {
    message
        .header("Message-ID")
        .unwrap_or("")
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}
