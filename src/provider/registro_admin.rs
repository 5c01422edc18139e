//! `pecbox log …` over the registro dei log: search, a transaction's timeline, a kept
//! receipt, a month's export, the chain check and rotation.

use base64::Engine;
use chrono::Utc;

use super::admin::{AdminResponse, LogRequest};
use super::identity;
use crate::config::Config;
use crate::registro::{self, Record, Registro};
use crate::store::Store;

pub fn execute(store: &Store, config: &Config, request: LogRequest) -> AdminResponse {
    match run(store, config, request) {
        Ok(response) => response,
        Err(e) => AdminResponse::error(e),
    }
}

fn run(store: &Store, config: &Config, request: LogRequest) -> Result<AdminResponse, String> {
    let registro = Registro::open(store).map_err(|e| e.to_string())?;
    match request {
        LogRequest::Search { query, json } => {
            let records = registro.search(&query).map_err(|e| e.to_string())?;
            Ok(AdminResponse::ok(render(&records, json, false)))
        }
        LogRequest::Show {
            identificativo,
            json,
        } => {
            let records = registro
                .timeline(&identificativo)
                .map_err(|e| e.to_string())?;
            if records.is_empty() {
                return Err(format!("no transaction {identificativo} in the registro"));
            }
            let mut text = String::new();
            if !json {
                text.push_str(&format!("Transazione {identificativo}\n"));
            }
            text.push_str(&render(&records, json, true));
            Ok(AdminResponse::ok(text))
        }
        LogRequest::Receipt { message_id } => {
            match registro.receipt(&message_id).map_err(|e| e.to_string())? {
                Some(bytes) => Ok(AdminResponse {
                    ok: true,
                    text: String::new(),
                    data: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    file: None,
                }),
                None => Err(format!(
                    "no receipt with Message-ID {message_id} is kept (search with `pecbox log search --message-id`)"
                )),
            }
        }
        LogRequest::Export { month } => {
            let id = identity::load(config).map_err(|e| e.to_string())?;
            let path = export_file(config, &month)?;
            let written = std::fs::File::create(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|f| {
                    let mut out = std::io::BufWriter::new(f);
                    registro
                        .export_to(&month, &id.signer, &config.provider.name, &mut out)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = written {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            Ok(AdminResponse {
                ok: true,
                text: String::new(),
                data: None,
                file: Some(path),
            })
        }
        LogRequest::Verify => {
            let anchors = own_anchors(config);
            let report = registro
                .verify(&anchors, &|_| {})
                .map_err(|e| e.to_string())?;
            Ok(verdict(&report))
        }
        LogRequest::Rotate { now } => {
            let id = identity::load(config).map_err(|e| e.to_string())?;
            let now = now.unwrap_or_else(Utc::now);
            let dropped = registro
                .rotate(
                    now,
                    config.retention.months,
                    &id.signer,
                    &config.provider.name,
                    &|_| {},
                )
                .map_err(|e| e.to_string())?;
            store.flush().map_err(|e| e.to_string())?;
            Ok(AdminResponse::ok(if dropped.is_empty() {
                format!(
                    "nothing to rotate: every month is within {} months\n",
                    config.retention.months
                )
            } else {
                format!("dropped months: {}\n", dropped.join(", "))
            }))
        }
    }
}

/// The provider's own CA: checkpoints must be signed under it.
pub fn own_anchors(config: &Config) -> Vec<Vec<u8>> {
    std::fs::read_to_string(config.ca_cert_path())
        .ok()
        .and_then(|pem| crate::smime::pem_certificates(&pem).ok())
        .unwrap_or_default()
}

/// Where an export is written for the command line to take: `<data_dir>/exports/`,
/// private to pecbox (the command runs as root or as pecbox).
fn export_file(config: &Config, month: &str) -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = config.data_dir().join("exports");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let safe: String = month
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    Ok(dir.join(format!("registro-{safe}-{stamp}.json")))
}

pub fn verdict(report: &registro::VerifyReport) -> AdminResponse {
    match &report.broken {
        None => AdminResponse::ok(format!(
            "registro intact: {} records in {} months, {} signed checkpoints{}\n",
            report.records,
            report.months.len(),
            report.checkpoints,
            report
                .signer
                .as_ref()
                .map(|s| format!(" (signed by {s})"))
                .unwrap_or_default()
        )),
        Some((seq, why)) => AdminResponse::error(format!("registro broken at record {seq}: {why}")),
    }
}

fn render(records: &[Record], json: bool, timeline: bool) -> String {
    let mut out = String::new();
    for r in records {
        if json {
            out.push_str(&serde_json::to_string(r).unwrap_or_default());
            out.push('\n');
            continue;
        }
        let kind = r.event.kind.map_or("?", |k| k.as_str());
        let rcpts = if r.event.recipients.is_empty() {
            String::new()
        } else {
            format!(" → {}", r.event.recipients.join(", "))
        };
        let sender = r.event.sender.as_deref().unwrap_or("");
        let detail = r
            .event
            .detail
            .as_ref()
            .map(|d| format!(" [{d}]"))
            .unwrap_or_default();
        let receipt = match (&r.event.message_id, r.receipt) {
            (Some(id), true) => format!(" (ricevuta {id})"),
            _ => String::new(),
        };
        if timeline {
            out.push_str(&format!(
                "  {:>8}  {}  {:<26} {}{rcpts}{detail}{receipt}\n",
                r.seq, r.time, kind, r.event.outcome
            ));
        } else {
            out.push_str(&format!(
                "{:>8}  {}  {:<26} {}  {sender}{rcpts}  {}{detail}{receipt}\n",
                r.seq,
                r.time,
                kind,
                r.event.identificativo.as_deref().unwrap_or("-"),
                r.event.outcome
            ));
        }
    }
    out
}

/// Every second: move the records the steps wrote into the store to the month files
/// (one fsync per second instead of one per step; until then they are in the store).
pub async fn settle(
    provider: std::sync::Arc<super::Provider>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    // A failure (a full disk, say) is logged when it starts and when it ends, not
    // every second; the records wait in the store meanwhile.
    let mut failing: Option<String> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.changed() => break,
        }
        let p = provider.clone();
        let outcome = match tokio::task::spawn_blocking(move || p.registro.settle()).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("crashed: {e}")),
        };
        match (&failing, outcome) {
            (Some(_), None) => tracing::info!("registro: month files writable again"),
            (Some(before), Some(now)) if *before == now => continue,
            (_, Some(now)) => {
                tracing::error!("registro: moving records to the month files: {now}");
                failing = Some(now);
                continue;
            }
            (None, None) => {}
        }
        failing = None;
    }
}

/// How long maintenance sleeps: a day, or less so that a month just ended is sealed a
/// few minutes after its last (Italian) midnight.
fn until_next_maintenance(now: chrono::DateTime<Utc>) -> std::time::Duration {
    let day = chrono::Duration::hours(24);
    let next_month = registro::month_after(&registro::month_of(now))
        .and_then(|m| registro::month_start_italian(&m));
    let wait = next_month
        .map(|t| t - now + chrono::Duration::minutes(5))
        .filter(|w| *w > chrono::Duration::zero() && *w < day)
        .unwrap_or(day);
    wait.to_std()
        .unwrap_or(std::time::Duration::from_secs(24 * 3600))
}

/// Daily, at start and just after each month ends: seal the closed months, fold the
/// day's index entries into the sorted index, drop the months beyond retention.
pub async fn maintain(
    provider: std::sync::Arc<super::Provider>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let p = provider.clone();
        let done = tokio::task::spawn_blocking(move || {
            p.registro.rotate(
                Utc::now(),
                p.config.retention.months,
                &p.identity.signer,
                &p.config.provider.name,
                &|month| tracing::info!(month, "registro: dropping a month beyond retention"),
            )
        })
        .await;
        match done {
            Ok(Ok(dropped)) if !dropped.is_empty() => {
                tracing::info!(months = ?dropped, "registro rotated")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("registro maintenance failed: {e}"),
            Err(e) => tracing::error!("registro maintenance crashed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(until_next_maintenance(Utc::now())) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn maintenance_wakes_just_after_a_month_ends() {
        // 31 March 2026, 20:00 UTC: April begins in Rome at 22:00 UTC (CEST).
        let now = Utc.with_ymd_and_hms(2026, 3, 31, 20, 0, 0).unwrap();
        assert_eq!(until_next_maintenance(now).as_secs(), 2 * 3600 + 300);
        let mid_month = Utc.with_ymd_and_hms(2026, 3, 10, 20, 0, 0).unwrap();
        assert_eq!(until_next_maintenance(mid_month).as_secs(), 24 * 3600);
    }
}
