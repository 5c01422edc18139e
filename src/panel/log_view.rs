//! Where the panel reads the registro dei log: searches, a message's timeline and a
//! holder's own logins.

use crate::provider::Provider;
use crate::registro::{EventKind, Query, Record};

/// A log search from the admin page.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Free text: an address, an identificativo, a Message-ID…
    pub text: String,
    /// Unix seconds, inclusive bounds.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: usize,
}

/// One record as the panel shows it.
#[derive(Debug, Clone)]
pub struct LogRow {
    pub time: i64,
    /// What happened (accettazione, consegna, login…).
    pub event: String,
    pub summary: String,
    /// The PEC identificativo, when the record belongs to a transaction (links to the
    /// timeline).
    pub identificativo: Option<String>,
}

/// One login, for the holder's own access log.
#[derive(Debug, Clone)]
pub struct AccessRow {
    pub time: i64,
    /// smtp, pop3, imap, web.
    pub protocol: String,
    pub ip: String,
    pub ok: bool,
}

fn row(r: &Record) -> LogRow {
    let e = &r.event;
    let mut summary = e.outcome.clone();
    if let Some(sender) = &e.sender {
        summary.push_str(&format!(" — {sender}"));
    }
    if !e.recipients.is_empty() {
        summary.push_str(&format!(" → {}", e.recipients.join(", ")));
    }
    if let Some(detail) = &e.detail {
        summary.push_str(&format!(" [{detail}]"));
    }
    LogRow {
        time: r.utc().map_or(0, |t| t.timestamp()),
        event: e.kind.map_or("?", |k| k.as_str()).to_string(),
        summary,
        identificativo: e.identificativo.clone(),
    }
}

fn at(unix: Option<i64>) -> Option<chrono::DateTime<chrono::Utc>> {
    unix.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
}

/// Records matching `query`, newest first; None when the registro cannot be read.
pub fn search(provider: &Provider, query: &LogQuery) -> Option<Vec<LogRow>> {
    let text = query.text.trim();
    let base = Query {
        since: at(query.from),
        until: at(query.to),
        ..Query::default()
    };
    let queries: Vec<Query> = if text.is_empty() {
        vec![base]
    } else {
        vec![
            Query {
                identificativo: Some(text.into()),
                ..base.clone()
            },
            Query {
                message_id: Some(text.into()),
                ..base.clone()
            },
            Query {
                sender: Some(text.into()),
                ..base.clone()
            },
            Query {
                recipient: Some(text.into()),
                ..base.clone()
            },
        ]
    };
    let mut records: Vec<Record> = Vec::new();
    for q in &queries {
        records.extend(provider.registro.search(q).ok()?);
    }
    records.sort_by_key(|r| std::cmp::Reverse(r.seq));
    records.dedup_by_key(|r| r.seq);
    records.truncate(query.limit.max(1));
    Some(records.iter().map(row).collect())
}

/// Every record of one message's life (by identificativo or Message-ID), oldest first.
pub fn timeline(provider: &Provider, id: &str) -> Option<Vec<LogRow>> {
    let mut records = provider.registro.timeline(id).ok()?;
    if records.is_empty() {
        records = provider
            .registro
            .search(&Query {
                message_id: Some(id.to_string()),
                ..Query::default()
            })
            .ok()?;
        if let Some(tx) = records.iter().find_map(|r| r.event.identificativo.clone()) {
            records = provider.registro.timeline(&tx).ok()?;
        }
    }
    Some(records.iter().map(row).collect())
}

/// The logins to `address` (every protocol), newest first.
pub fn access_log(provider: &Provider, address: &str) -> Option<Vec<AccessRow>> {
    let records = provider
        .registro
        .search(&Query {
            sender: Some(address.to_string()),
            kind: Some(EventKind::Login),
            ..Query::default()
        })
        .ok()?;
    let mut rows: Vec<AccessRow> = records
        .iter()
        .rev()
        .take(200)
        .map(|r| {
            let detail = r.event.detail.clone().unwrap_or_default();
            let (protocol, ip) = detail
                .split_once(" from ")
                .map(|(p, ip)| (p.to_string(), ip.to_string()))
                .unwrap_or((detail.clone(), String::new()));
            AccessRow {
                time: r.utc().map_or(0, |t| t.timestamp()),
                protocol,
                ip,
                ok: r.event.outcome == "ok",
            }
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.time));
    Some(rows)
}
