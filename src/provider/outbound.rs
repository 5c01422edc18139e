//! The outbound queue: every busta, receipt and forwarded message leaves through here,
//! to another provider over SMTP with STARTTLS, or — for our own domains — straight to
//! our punto di ricezione, so local recipients take the same path as remote ones.
//! Retries back off up to the queue lifetime (24 h); a recipient that cannot be reached
//! gets its sender an avviso di mancata consegna.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::reception::Inbound;
use super::writes::{Tracked, Write};
use super::{unix_now, CoreError, Provider};
use crate::pec::daticert::Errore;
use crate::pec::messages;
use crate::pec::original::{Certified, OriginalHeaders};
use crate::registro::{Event, EventKind};
use crate::smtp::{self, Envelope};
use crate::store::{QueueEntry, RecipientState, INBOX};

const PARALLEL: usize = 8;

/// Runs until `shutdown` turns true; what is in flight finishes, the rest stays queued.
pub async fn run(provider: Arc<Provider>, mut shutdown: watch::Receiver<bool>) {
    let in_flight: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = unix_now();
        let due = match provider.store.queue() {
            Ok(q) => q,
            Err(e) => {
                tracing::error!("outbound queue unreadable: {e}");
                Vec::new()
            }
        };
        for entry in due.into_iter().filter(|e| e.next_attempt <= now) {
            if tasks.len() >= PARALLEL {
                break;
            }
            let claimed = in_flight
                .lock()
                .map(|mut s| s.insert(entry.id))
                .unwrap_or(false);
            if !claimed {
                continue;
            }
            let provider = provider.clone();
            let in_flight = in_flight.clone();
            tasks.spawn(async move {
                let id = entry.id;
                if let Err(e) = attempt(&provider, entry).await {
                    tracing::error!(id, "outbound attempt failed: {e}");
                }
                if let Ok(mut s) = in_flight.lock() {
                    s.remove(&id);
                }
            });
        }
        tokio::select! {
            _ = provider.queue_wakeup.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = shutdown.changed() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// One delivery attempt of one queue entry.
async fn attempt(provider: &Arc<Provider>, mut entry: QueueEntry) -> Result<(), CoreError> {
    let Some(message) = provider.store.queue_message(entry.id)? else {
        tracing::error!(
            id = entry.id,
            "queued message body missing; dropping the entry"
        );
        provider.apply(&[Write::Dequeue(entry.id)])?;
        return Ok(());
    };
    let pending: Vec<String> = entry
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Pending)
        .map(|r| r.address.clone())
        .collect();
    if pending.is_empty() {
        provider.apply(&[Write::Dequeue(entry.id)])?;
        return Ok(());
    }
    let outcomes = if provider.config.manages(&entry.domain) {
        local(provider, &entry, &pending, message).await
    } else {
        remote(provider, &entry, &pending, &message).await
    };
    entry.attempts += 1;
    let mut writes = Vec::new();
    let mut newly_failed = Vec::new();
    // Recipients the queue gave up on for lack of time, not for a refusal.
    let mut expired: Vec<String> = Vec::new();
    let identificativo = entry
        .label
        .rsplit(' ')
        .find(|w| w.contains('@') && !w.contains(' '))
        .filter(|_| !entry.label.starts_with("forward"))
        .map(str::to_string);
    for (address, outcome) in &outcomes {
        let (state, reply) = match outcome {
            Outcome::Delivered(r) => ("delivered", r),
            Outcome::Failed(r) => ("failed", r),
            Outcome::Retry(r) => ("retry", r),
        };
        let mut event = Event::new(EventKind::Inoltro, format!("{state}: {reply}"))
            .sender(&entry.mail_from)
            .recipients(std::slice::from_ref(address))
            .detail(format!("{} via {}", entry.label, entry.domain));
        if let Some(id) = &identificativo {
            event = event.identificativo(id);
        }
        writes.push(Write::Log(event, None));
    }
    for (address, outcome) in outcomes {
        let Some(r) = entry
            .recipients
            .iter_mut()
            .find(|r| r.address == address && r.state == RecipientState::Pending)
        else {
            continue;
        };
        match outcome {
            Outcome::Delivered(reply) => {
                r.state = RecipientState::Delivered;
                r.last_reply = Some(reply);
            }
            Outcome::Failed(reply) => {
                r.state = RecipientState::Failed;
                r.last_reply = Some(reply.clone());
                newly_failed.push((address, reply));
            }
            Outcome::Retry(reply) => r.last_reply = Some(reply),
        }
    }
    let lifetime = provider.config.delivery.queue_lifetime_secs as i64;
    let now = unix_now();
    if now - entry.created >= lifetime {
        for r in entry
            .recipients
            .iter_mut()
            .filter(|r| r.state == RecipientState::Pending)
        {
            let reply = format!(
                "4.4.7 queue lifetime exceeded; last answer: {}",
                r.last_reply.as_deref().unwrap_or("none")
            );
            r.state = RecipientState::Failed;
            r.last_reply = Some(reply.clone());
            expired.push(r.address.clone());
            newly_failed.push((r.address.clone(), reply));
        }
    }
    if entry
        .recipients
        .iter()
        .any(|r| r.state == RecipientState::Pending)
    {
        entry.next_attempt = now + backoff(provider, entry.attempts);
        writes.push(Write::UpdateQueue(entry.clone()));
    } else {
        writes.push(Write::Dequeue(entry.id));
    }
    for (address, reply) in &newly_failed {
        tracing::warn!(id = entry.id, label = %entry.label, address, reply, "delivery failed");
        // A certified recipient out of time gets the 24 h notice (timeouts.rs), which is
        // the rules' answer to exactly this; a second notice would say the same twice.
        let certified =
            provider.recipient_tipo(address) == crate::pec::daticert::TipoDestinatario::Certificato;
        if expired.contains(address) && certified {
            continue;
        }
        writes.extend(failure_notice(provider, &entry, address, reply)?);
    }
    provider.apply(&writes)?;
    Ok(())
}

fn backoff(provider: &Provider, attempts: u32) -> i64 {
    let base = provider.config.delivery.retry_secs.max(1);
    let max = provider.config.delivery.retry_max_secs.max(base);
    let factor = 1u64 << attempts.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(max) as i64
}

enum Outcome {
    Delivered(String),
    Failed(String),
    Retry(String),
}

async fn local(
    provider: &Arc<Provider>,
    entry: &QueueEntry,
    pending: &[String],
    message: crate::store::Body,
) -> Vec<(String, Outcome)> {
    let p = provider.clone();
    let mail_from = entry.mail_from.clone();
    let rcpts = pending.to_vec();
    let result = tokio::task::spawn_blocking(move || p.receive(&mail_from, &rcpts, &message)).await;
    let outcome = |o: &dyn Fn() -> Outcome| pending.iter().map(|a| (a.clone(), o())).collect();
    match result {
        Ok(Ok(Inbound::Accepted)) => {
            outcome(&|| Outcome::Delivered("250 2.0.0 delivered locally".into()))
        }
        Ok(Ok(Inbound::Refused {
            code,
            enhanced,
            text,
        })) => {
            let reply = format!("{code} {enhanced} {text}");
            if code >= 500 {
                outcome(&|| Outcome::Failed(reply.clone()))
            } else {
                outcome(&|| Outcome::Retry(reply.clone()))
            }
        }
        Ok(Err(e)) => outcome(&|| Outcome::Retry(format!("451 4.3.0 {e}"))),
        Err(e) => outcome(&|| Outcome::Retry(format!("451 4.3.0 {e}"))),
    }
}

async fn remote(
    provider: &Arc<Provider>,
    entry: &QueueEntry,
    pending: &[String],
    message: &[u8],
) -> Vec<(String, Outcome)> {
    let all = |o: Outcome| -> Vec<(String, Outcome)> {
        let text = match &o {
            Outcome::Delivered(t) | Outcome::Failed(t) | Outcome::Retry(t) => t.clone(),
        };
        pending
            .iter()
            .map(|a| {
                (
                    a.clone(),
                    match o {
                        Outcome::Delivered(_) => Outcome::Delivered(text.clone()),
                        Outcome::Failed(_) => Outcome::Failed(text.clone()),
                        Outcome::Retry(_) => Outcome::Retry(text.clone()),
                    },
                )
            })
            .collect()
    };
    let forward = entry.label.starts_with("forward");
    let hops = match (&provider.config.delivery.smarthost, forward) {
        (Some(relay), true) => {
            let route = std::collections::BTreeMap::from([(entry.domain.clone(), relay.clone())]);
            smtp::resolve_next_hop(&entry.domain, &route, &provider.resolver).await
        }
        _ => {
            smtp::resolve_next_hop(
                &entry.domain,
                &provider.config.delivery.routes,
                &provider.resolver,
            )
            .await
        }
    };
    if hops.is_empty() {
        return all(Outcome::Retry(format!(
            "no next hop found for {} (no route, no MX, no address)",
            entry.domain
        )));
    }
    // PEC between providers must travel over TLS (RFC 6109 §5.3); ordinary mail opportunistically.
    let require_tls = !forward
        && provider.recipient_tipo(&format!("x@{}", entry.domain))
            == crate::pec::daticert::TipoDestinatario::Certificato;
    let envelope = Envelope {
        mail_from: entry.mail_from.clone(),
        rcpt_to: pending.to_vec(),
    };
    let timeouts = smtp::ClientTimeouts::default();
    let mut last_error = String::new();
    for (host, addr) in hops {
        let sent = smtp::send(
            addr,
            &host,
            &provider.config.provider.hostname,
            provider.client_tls.clone(),
            require_tls,
            &envelope,
            message,
            &timeouts,
        )
        .await;
        match sent {
            Ok(results) => {
                return results
                    .into_iter()
                    .map(|r| {
                        let outcome = match r.result {
                            Ok(reply) => Outcome::Delivered(reply_text(&reply)),
                            Err(reply) if reply.code >= 500 => Outcome::Failed(reply_text(&reply)),
                            Err(reply) => Outcome::Retry(reply_text(&reply)),
                        };
                        (r.address, outcome)
                    })
                    .collect()
            }
            Err(e) if !e.is_transient() => return all(Outcome::Failed(format!("{host}: {e}"))),
            Err(e) => last_error = format!("{host}: {e}"),
        }
    }
    all(Outcome::Retry(last_error))
}

fn reply_text(reply: &smtp::Reply) -> String {
    match &reply.enhanced {
        Some(enhanced) => format!("{} {enhanced} {}", reply.code, reply.text),
        None => format!("{} {}", reply.code, reply.text),
    }
}

/// An administrator ends delivery of a queue entry (the panel's "give up"): its pending
/// recipients fail as when the queue lifetime runs out — for a busta the sender gets an
/// avviso di mancata consegna each — and every step goes to the registro. `None` when
/// there is no such entry; otherwise how many recipients were given up.
pub fn give_up(provider: &Provider, id: u64) -> Result<Option<usize>, CoreError> {
    let Some(entry) = provider.store.queue_entry(id)? else {
        return Ok(None);
    };
    let identificativo = entry.label.strip_prefix("busta ");
    let mut writes = Vec::new();
    let mut given_up = 0;
    for r in entry
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Pending)
    {
        let last = r.last_reply.as_deref().unwrap_or("none");
        let mut event = Event::new(EventKind::Inoltro, format!("given up: {last}"))
            .sender(&entry.mail_from)
            .recipients(std::slice::from_ref(&r.address))
            .detail(format!(
                "{} via {}, ended by the administrator",
                entry.label, entry.domain
            ));
        if let Some(id) = identificativo {
            event = event.identificativo(id);
        }
        writes.push(Write::Log(event, None));
        let reply = format!(
            "5.4.7 - {} - consegna annullata dall'amministratore; ultimo esito: {last}",
            provider.gestore.name
        );
        writes.extend(failure_notice(provider, &entry, &r.address, &reply)?);
        given_up += 1;
    }
    writes.push(Write::Dequeue(id));
    provider.apply(&writes)?;
    Ok(Some(given_up))
}

/// A busta that cannot reach a recipient: the sender gets an avviso di mancata consegna
/// and the transaction records the failure. Other messages (receipts) are only logged.
fn failure_notice(
    provider: &Provider,
    entry: &QueueEntry,
    address: &str,
    reply: &str,
) -> Result<Vec<Write<'static>>, CoreError> {
    let Some(identificativo) = entry.label.strip_prefix("busta ") else {
        return Ok(Vec::new());
    };
    let Some(tx) = provider.store.transaction(identificativo)? else {
        return Ok(Vec::new());
    };
    let message = provider.store.queue_message(entry.id)?.unwrap_or_default();
    let class = crate::pec::classify::classify(&message);
    let certified = class
        .daticert
        .as_ref()
        .map(Certified::from_daticert)
        .unwrap_or_else(|| {
            let headers = OriginalHeaders::default();
            let mut c = headers.certify(identificativo, |_| Default::default());
            c.mittente = tx.sender.clone();
            c.oggetto = tx.subject.clone();
            c.msgid = tx.msgid.clone();
            c
        });
    let time = provider.now();
    let notice = messages::mancata_consegna(
        &provider.gestore,
        &certified,
        address,
        Errore::Altro,
        reply,
        &provider.new_id("rcpt")?,
        time,
    );
    let notice_id = super::writes::message_id_of(&notice);
    let notice = provider.sign(&notice)?;
    Ok(vec![
        Write::Log(
            Event::new(EventKind::MancataConsegnaEmessa, reply)
                .identificativo(identificativo)
                .original_message_id(certified.msgid.as_deref())
                .message_id(notice_id)
                .sender(&tx.sender)
                .recipients(&[address.to_string()])
                .subject(&tx.subject)
                .provider(&provider.gestore.name)
                .at(&time),
            Some(notice.clone().into()),
        ),
        Write::Append {
            address: tx.sender.clone(),
            folder: INBOX.into(),
            message: notice.into(),
        },
        Write::Track {
            identificativo: identificativo.to_string(),
            address: address.to_string(),
            change: Tracked::Failed,
        },
    ])
}
