//! Ordinary e-mail the panel sends through the configured smarthost
//! (`[delivery] smarthost`): notices of new PEC to the holder's chosen addresses, the
//! daily report of unread messages, and password-reset links.
//!
//! Notices come from a watcher over the INBOXes of the holders who asked for them
//! (it remembers the last uid considered), so they work whatever path delivered the
//! message; [`on_delivered`] only wakes it up early.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{watch, Notify};

use super::prefs::{self, HolderPrefs};
use crate::pec::classify::classify;
use crate::pec::kind::MessageKind;
use crate::provider::Provider;
use crate::smtp::{self, ClientTimeouts, Envelope};
use crate::store::INBOX;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no smarthost configured ([delivery] smarthost)")]
    NoSmarthost,
    #[error("smarthost {0}: cannot resolve")]
    Resolve(String),
    #[error("building the message: {0}")]
    Build(#[from] std::io::Error),
    #[error("smarthost: {0}")]
    Send(#[from] smtp::client::SendError),
    #[error("smarthost refused {0}")]
    Refused(String),
}

fn wake() -> &'static Notify {
    static WAKE: OnceLock<Notify> = OnceLock::new();
    WAKE.get_or_init(Notify::new)
}

/// Hook for the punto di consegna: call after a message was stored in `address`'s
/// INBOX. Cheap and non-blocking: it only wakes the notification watcher when the
/// holder asked for notices.
pub fn on_delivered(provider: &Arc<Provider>, address: &str, message: &[u8]) {
    let _ = message;
    if !prefs::load(&provider.config, address).notify_to.is_empty() {
        wake().notify_one();
    }
}

/// `https://host[:port]` of the panel, for links in messages.
pub fn panel_base_url(provider: &Provider) -> String {
    let port = provider
        .config
        .listen
        .panel
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(443);
    let host = &provider.config.provider.hostname;
    if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// Sends an ordinary text message from the service address through the smarthost.
pub async fn send_ordinary(
    provider: &Provider,
    to: &[String],
    subject: &str,
    text: &str,
) -> Result<(), NotifyError> {
    let relay = provider
        .config
        .delivery
        .smarthost
        .clone()
        .ok_or(NotifyError::NoSmarthost)?;
    let host = relay
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
        .unwrap_or_else(|| relay.clone());
    let target = tokio::net::lookup_host(relay.as_str())
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| NotifyError::Resolve(relay.clone()))?;
    let from = provider.config.service_address();
    let message = mail_builder::MessageBuilder::new()
        .from((provider.config.provider.name.clone(), from.clone()))
        .to(to.to_vec())
        .subject(subject.to_string())
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-generated"),
        )
        .text_body(text.to_string())
        .write_to_vec()?;
    let envelope = Envelope {
        mail_from: from,
        rcpt_to: to.to_vec(),
    };
    let timeouts = ClientTimeouts {
        connect: Duration::from_secs(10),
        command: Duration::from_secs(30),
        data_block: Duration::from_secs(30),
        data_end: Duration::from_secs(60),
    };
    let outcomes = smtp::send(
        target,
        &host,
        &provider.config.provider.hostname,
        provider.client_tls.clone(),
        false,
        &envelope,
        &message,
        &timeouts,
    )
    .await?;
    let refused: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.result
                .as_ref()
                .err()
                .map(|r| format!("{}: {r}", o.address))
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(NotifyError::Refused(refused.join("; ")))
    }
}

/// The INBOX position from which notices start: everything there now is old.
pub fn mark_inbox_seen(provider: &Provider, prefs: &mut HolderPrefs) {
    if let Ok(Some(state)) = provider.store.folder_state(&prefs.address, INBOX) {
        prefs.notified = Some((state.uidvalidity, state.uidnext.saturating_sub(1)));
    }
}

/// Runs until shutdown: notices of new PEC messages.
pub async fn run_watcher(provider: Arc<Provider>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff: HashMap<String, (Instant, Duration)> = HashMap::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        for p in prefs::all(&provider.config) {
            if p.notify_to.is_empty() {
                continue;
            }
            if backoff
                .get(&p.address)
                .is_some_and(|(until, _)| Instant::now() < *until)
            {
                continue;
            }
            match notify_holder(&provider, &p).await {
                Ok(()) => {
                    backoff.remove(&p.address);
                }
                Err(e) => {
                    let delay = backoff
                        .get(&p.address)
                        .map_or(Duration::from_secs(30), |(_, d)| {
                            (*d * 2).min(Duration::from_secs(1800))
                        });
                    tracing::warn!(address = %p.address, "PEC notice not sent: {e}; retrying in {delay:?}");
                    backoff.insert(p.address.clone(), (Instant::now() + delay, delay));
                }
            }
        }
        tokio::select! {
            _ = wake().notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// New messages of one holder's INBOX since the last look; notices for the PEC ones.
async fn notify_holder(provider: &Arc<Provider>, p: &HolderPrefs) -> Result<(), NotifyError> {
    let store = &provider.store;
    let Ok(Some(state)) = store.folder_state(&p.address, INBOX) else {
        return Ok(());
    };
    let last = match p.notified {
        Some((uidvalidity, last)) if uidvalidity == state.uidvalidity => last,
        // First look, or the INBOX was recreated: start from now.
        _ => {
            let _ = prefs::update(&provider.config, &p.address, |q| {
                mark_inbox_seen(provider, q)
            });
            return Ok(());
        }
    };
    let metas = store.list(&p.address, INBOX).unwrap_or_default();
    for meta in metas.into_iter().filter(|m| m.uid > last) {
        let raw = store
            .fetch(&p.address, INBOX, meta.uid)
            .ok()
            .flatten()
            .unwrap_or_default();
        if let Some((subject, text)) = notice_for(provider, p, &raw, meta.internal_date) {
            send_ordinary(provider, &p.notify_to, &subject, &text).await?;
            tracing::info!(address = %p.address, uid = meta.uid, "PEC notice sent");
        }
        let _ = prefs::update(&provider.config, &p.address, |q| {
            q.notified = Some((state.uidvalidity, meta.uid));
        });
    }
    Ok(())
}

/// The notice for a newly arrived message, if it is a PEC message the holder wants.
fn notice_for(
    provider: &Provider,
    p: &HolderPrefs,
    raw: &[u8],
    arrived: i64,
) -> Option<(String, String)> {
    let class = classify(raw);
    if !matches!(
        class.kind(),
        Some(MessageKind::BustaTrasporto | MessageKind::BustaAnomalia)
    ) {
        return None;
    }
    let summary = super::mailview::summarize(raw);
    let sender = class
        .daticert
        .as_ref()
        .map(|d| d.mittente.clone())
        .unwrap_or_else(|| summary.from.clone());
    let wanted = p.notify_from.is_empty()
        || p.notify_from.iter().any(|f| {
            sender.eq_ignore_ascii_case(f) || summary.from.to_lowercase().contains(f.as_str())
        });
    if !wanted {
        return None;
    }
    let subject = format!(
        "Nuovo messaggio PEC da {sender}: {}",
        one_line(&summary.subject)
    );
    let text = format!(
        "Nella casella PEC {address} è arrivato un nuovo messaggio di posta certificata.\n\n\
         Mittente: {sender}\nOggetto: {subj}\nRicevuto: {when}\n\n\
         Per leggerlo accedi alla webmail: {base}/mail\n\n\
         --\n{name}\n\n\
         A new certified (PEC) message arrived in {address}.\n",
        address = p.address,
        subj = one_line(&summary.subject),
        when = super::ui::time(arrived),
        base = panel_base_url(provider),
        name = provider.config.provider.name,
    );
    Some((subject, text))
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// Runs until shutdown: each holder's daily report of unread INBOX messages, at the
/// time they chose (Italian time), to their reference address (else the notice
/// addresses). Days without unread messages send nothing.
pub async fn run_reports(provider: Arc<Provider>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = Utc::now().with_timezone(&chrono_tz::Europe::Rome);
        let today = now.format("%Y-%m-%d").to_string();
        let hm = now.format("%H:%M").to_string();
        for p in prefs::all(&provider.config) {
            let Some(at) = &p.report_time else { continue };
            if p.last_report.as_deref() == Some(today.as_str()) || hm.as_str() < at.as_str() {
                continue;
            }
            let to: Vec<String> = match &p.reference {
                Some(r) => vec![r.clone()],
                None => p.notify_to.clone(),
            };
            if to.is_empty() {
                continue;
            }
            match report(&provider, &p, &to).await {
                Ok(sent) => {
                    if sent {
                        tracing::info!(address = %p.address, "daily report sent");
                    }
                    let _ = prefs::update(&provider.config, &p.address, |q| {
                        q.last_report = Some(today.clone())
                    });
                }
                Err(e) => tracing::warn!(address = %p.address, "daily report not sent: {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn report(
    provider: &Arc<Provider>,
    p: &HolderPrefs,
    to: &[String],
) -> Result<bool, NotifyError> {
    let store = &provider.store;
    let unread: Vec<_> = store
        .list(&p.address, INBOX)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !m.flags.iter().any(|f| f == "\\Seen"))
        .collect();
    if unread.is_empty() {
        return Ok(false);
    }
    let mut lines = String::new();
    for meta in unread.iter().rev().take(50) {
        let raw = store
            .fetch(&p.address, INBOX, meta.uid)
            .ok()
            .flatten()
            .unwrap_or_default();
        let s = super::mailview::summarize(&raw);
        let (_, kind) = super::mailview::badge(super::ui::Lang::It, s.kind, s.malformed);
        lines.push_str(&format!(
            "- {}  {}  [{}]  {}\n",
            super::ui::time(meta.internal_date),
            one_line(&s.from),
            kind,
            one_line(&s.subject)
        ));
    }
    if unread.len() > 50 {
        lines.push_str(&format!("… e altri {}\n", unread.len() - 50));
    }
    let subject = format!(
        "Rapporto giornaliero: {} messaggi non letti in {}",
        unread.len(),
        p.address
    );
    let text = format!(
        "Messaggi non letti nella casella PEC {}:\n\n{lines}\nWebmail: {}/mail\n\n--\n{}\n",
        p.address,
        panel_base_url(provider),
        provider.config.provider.name
    );
    send_ordinary(provider, to, &subject, &text).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A one-connection SMTP sink: returns the DATA it received.
    async fn sink(listener: tokio::net::TcpListener) -> String {
        let (socket, _) = listener.accept().await.unwrap();
        let (r, mut w) = socket.into_split();
        let mut lines = BufReader::new(r).lines();
        w.write_all(b"220 sink\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            if in_data {
                if line == "." {
                    in_data = false;
                    w.write_all(b"250 ok\r\n").await.unwrap();
                } else {
                    data.push_str(&line);
                    data.push('\n');
                }
                continue;
            }
            let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
            match verb.as_str() {
                "DATA" => {
                    in_data = true;
                    w.write_all(b"354 go\r\n").await.unwrap();
                }
                "QUIT" => {
                    w.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => w.write_all(b"250 ok\r\n").await.unwrap(),
            }
        }
        data
    }

    #[tokio::test]
    async fn daily_report_lists_unread_messages() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (_dir, provider) =
            crate::panel::test_provider(&format!("smarthost = \"127.0.0.1:{port}\""));
        let alice = "alice@pec.alfa.test";
        let raw = b"From: bob@pec.alfa.test\r\nTo: alice@pec.alfa.test\r\nSubject: Da leggere\r\n\r\nx\r\n";
        provider.store.append(alice, INBOX, raw, &[], 0).unwrap();
        provider
            .store
            .append(alice, INBOX, raw, &["\\Seen".to_string()], 0)
            .unwrap();
        let prefs = prefs::update(&provider.config, alice, |p| {
            p.reference = Some("alice@example.org".into());
            p.report_time = Some("00:00".into());
            p.clone()
        })
        .unwrap();
        let received = tokio::spawn(sink(listener));
        let sent = report(&provider, &prefs, &["alice@example.org".to_string()])
            .await
            .unwrap();
        assert!(sent);
        let data = received.await.unwrap();
        assert!(
            data.contains("Subject: Rapporto giornaliero: 1 messaggi non letti"),
            "{data}"
        );
        assert!(data.contains("Da leggere"), "{data}");
        assert!(data.contains("Auto-Submitted: auto-generated"), "{data}");
    }

    #[tokio::test]
    async fn no_smarthost_no_mail() {
        let (_dir, provider) = crate::panel::test_provider("");
        let e = send_ordinary(&provider, &["a@example.org".into()], "s", "t")
            .await
            .unwrap_err();
        assert!(matches!(e, NotifyError::NoSmarthost));
    }
}
