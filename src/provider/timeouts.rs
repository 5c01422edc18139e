//! The avvisi di mancata consegna per superamento tempo massimo (pec-rules §8): for each
//! certified recipient, no presa in carico and no consegna within 12 h → the preavviso;
//! no consegna within 24 h → the final notice, and tracking stops. Both go to the
//! sender, who is always one of our holders.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::writes::{Tracked, Write};
use super::{unix_now, CoreError, Provider};
use crate::pec::kind::TimeoutStage;
use crate::pec::messages;
use crate::pec::original::Certified;
use crate::registro::{Event, EventKind};
use crate::store::{Transaction, INBOX};

pub async fn run(provider: Arc<Provider>, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_secs((provider.config.delivery.preavviso_secs / 8).clamp(1, 30));
    loop {
        let p = provider.clone();
        match tokio::task::spawn_blocking(move || p.check_timeouts(unix_now())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(notices = n, "timeout notices issued"),
            Ok(Err(e)) => tracing::error!("timeout check failed: {e}"),
            Err(e) => tracing::error!("timeout check crashed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
    }
}

impl Provider {
    /// Issues the notices due at `now`; returns how many.
    pub fn check_timeouts(&self, now: i64) -> Result<usize, CoreError> {
        let preavviso = self.config.delivery.preavviso_secs as i64;
        let timeout = self.config.delivery.timeout_secs as i64;
        let mut issued = 0;
        for tx in self.store.open_transactions()? {
            let age = now - tx.accepted;
            let mut writes = Vec::new();
            for r in tx
                .recipients
                .iter()
                .filter(|r| r.certified && r.failed.is_none())
            {
                if r.consegna.is_some() || r.notice_24h.is_some() {
                    continue;
                }
                let stage = if age >= timeout {
                    Some((TimeoutStage::Definitivo24h, Tracked::Notice24h))
                } else if age >= preavviso && r.presa_in_carico.is_none() && r.notice_12h.is_none()
                {
                    Some((TimeoutStage::Preavviso12h, Tracked::Notice12h))
                } else {
                    None
                };
                if let Some((stage, tracked)) = stage {
                    writes.extend(self.timeout_notice(&tx, &r.address, stage)?);
                    writes.push(Write::Track {
                        identificativo: tx.identificativo.clone(),
                        address: r.address.clone(),
                        change: tracked,
                    });
                    issued += 1;
                }
            }
            if !writes.is_empty() {
                self.apply(&writes)?;
            }
        }
        Ok(issued)
    }

    fn timeout_notice(
        &self,
        tx: &Transaction,
        recipient: &str,
        stage: TimeoutStage,
    ) -> Result<Vec<Write<'static>>, CoreError> {
        let certified = Certified {
            mittente: tx.sender.clone(),
            destinatari: tx
                .recipients
                .iter()
                .map(|r| crate::pec::daticert::Destinatario {
                    indirizzo: r.address.clone(),
                    tipo: if r.certified {
                        crate::pec::daticert::TipoDestinatario::Certificato
                    } else {
                        crate::pec::daticert::TipoDestinatario::Esterno
                    },
                })
                .collect(),
            risposte: String::new(),
            oggetto: tx.subject.clone(),
            identificativo: tx.identificativo.clone(),
            msgid: tx.msgid.clone(),
        };
        let time = self.now();
        let notice = messages::tempo_massimo(
            &self.gestore,
            &certified,
            recipient,
            stage,
            &self.new_id("rcpt")?,
            time,
        );
        let notice_id = super::writes::message_id_of(&notice);
        let notice = self.sign(&notice)?;
        let kind = if stage == TimeoutStage::Preavviso12h {
            EventKind::Preavviso12h
        } else {
            EventKind::Avviso24h
        };
        Ok(vec![
            Write::Log(
                Event::new(kind, "notice issued")
                    .identificativo(&tx.identificativo)
                    .message_id(notice_id)
                    .sender(&tx.sender)
                    .recipients(&[recipient.to_string()])
                    .subject(&tx.subject)
                    .provider(&self.gestore.name)
                    .at(&time),
                Some(notice.clone().into()),
            ),
            Write::Append {
                address: tx.sender.clone(),
                folder: INBOX.into(),
                message: notice.into(),
            },
        ])
    }
}
