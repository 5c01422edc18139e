//! Webmail: folders, message list with paging and search, reading (PEC kind, daticert,
//! signature, the certified original), sent messages with their receipts and the state
//! of each recipient, compose, move, delete, export as .eml and .mbox.
//!
//! Every route works on the mailbox of the session's holder only: no route takes a
//! mailbox address from the request.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;

use super::mailview::{self, badge, Summary};
use super::session::Ctx;
use super::ui::{self, csrf, folder_label, percent_encode, Flash, Nav, PageOptions};
use super::{download, safe_filename, upload, Panel, PanelError, PanelResult};
use crate::provider::access::Submission;
use crate::store::{MessageMeta, TrackedRecipient, Transaction, INBOX, SENT};

const PAGE: usize = 25;
const SEEN: &str = "\\Seen";

pub fn routes(panel: &Arc<Panel>) -> Router<Arc<Panel>> {
    let compose_limit =
        upload::body_limit(panel.provider.config.delivery.max_message_bytes as usize);
    Router::new()
        .route("/mail", get(list))
        .route("/mail/msg", get(read))
        .route("/mail/track", get(track))
        .route("/mail/eml", get(export_eml))
        .route("/mail/mbox", get(export_mbox))
        .route("/mail/part", get(part))
        .route("/mail/move", post(move_message))
        .route("/mail/delete", post(delete_message))
        .route("/mail/unread", post(mark_unread))
        .route("/mail/folders", post(create_folder))
        .route("/mail/folders/delete", post(delete_folder))
        .route(
            "/mail/compose",
            get(compose_page)
                .post(compose)
                .layer(DefaultBodyLimit::max(compose_limit)),
        )
}

impl Panel {
    /// The folder's messages with their summaries, newest first.
    fn summaries(
        &self,
        address: &str,
        folder: &str,
    ) -> PanelResult<Vec<(MessageMeta, Arc<Summary>)>> {
        let store = &self.provider.store;
        let state = store
            .folder_state(address, folder)?
            .ok_or(PanelError::NotFound)?;
        let metas = store.list(address, folder)?;
        let mut out = Vec::with_capacity(metas.len());
        for meta in metas.into_iter().rev() {
            let key = (address.to_string(), state.uidvalidity, meta.uid);
            let cached = self
                .summaries
                .lock()
                .ok()
                .and_then(|c| c.get(&key).cloned());
            let summary = match cached {
                Some(s) => s,
                None => {
                    let Some(raw) = store.fetch(address, folder, meta.uid)? else {
                        continue;
                    };
                    let s = Arc::new(mailview::summarize(&raw));
                    if let Ok(mut c) = self.summaries.lock() {
                        if c.len() > 50_000 {
                            c.clear();
                        }
                        c.insert(key, s.clone());
                    }
                    s
                }
            };
            out.push((meta, summary));
        }
        Ok(out)
    }

    /// Trust anchors for signature checks: our CA and every provider of the index.
    fn anchors(&self) -> Vec<Vec<u8>> {
        let mut anchors =
            crate::smime::pem_certificates(&self.provider.identity.ca_pem).unwrap_or_default();
        if let Ok(providers) = self.provider.store.providers() {
            for p in providers {
                anchors.extend(p.certificates);
            }
        }
        anchors
    }
}

/// Runs store and parsing work off the async threads.
async fn blocking<T: Send + 'static>(
    panel: &Arc<Panel>,
    f: impl FnOnce(&Panel) -> PanelResult<T> + Send + 'static,
) -> PanelResult<T> {
    let p = panel.clone();
    tokio::task::spawn_blocking(move || f(&p))
        .await
        .map_err(|e| PanelError::Internal(e.to_string()))?
}

fn folder_url(folder: &str) -> String {
    format!("/mail?f={}", percent_encode(folder))
}

fn msg_url(folder: &str, uid: u32) -> String {
    format!("/mail/msg?f={}&uid={uid}", percent_encode(folder))
}

/// The badge of a listed message: our sent copies are PEC, not ordinary mail.
fn folder_badge(lang: ui::Lang, folder: &str, s: &Summary) -> (&'static str, &'static str) {
    if s.kind.is_none() && folder == SENT {
        ("busta", lang.t("PEC inviata", "Sent PEC"))
    } else {
        badge(lang, s.kind, s.malformed)
    }
}

/// The state of one recipient of a sent message, as a CSS class, a stable code and a label.
pub fn recipient_state(
    ctx: &Ctx,
    r: &TrackedRecipient,
) -> (&'static str, &'static str, &'static str) {
    if r.failed.is_some() {
        (
            "mancata",
            "mancata-consegna",
            ctx.t("Mancata consegna", "Not delivered"),
        )
    } else if r.consegna.is_some() {
        ("consegna", "consegnata", ctx.t("Consegnata", "Delivered"))
    } else if r.notice_24h.is_some() {
        ("timeout", "timeout", ctx.t("Tempo scaduto", "Timed out"))
    } else if !r.certified {
        (
            "plain",
            "esterno",
            ctx.t("Inviata (destinatario non PEC)", "Sent (non-PEC recipient)"),
        )
    } else if r.notice_12h.is_some() {
        (
            "timeout",
            "preavviso",
            ctx.t("Ritardo (preavviso 12 ore)", "Delayed (12-hour warning)"),
        )
    } else if r.presa_in_carico.is_some() {
        (
            "presa",
            "presa-in-carico",
            ctx.t("Presa in carico", "Taken in charge"),
        )
    } else {
        (
            "pending",
            "accettata",
            ctx.t("In consegna", "Being delivered"),
        )
    }
}

fn pending(tx: &Transaction) -> bool {
    tx.recipients.iter().any(|r| {
        r.certified && r.consegna.is_none() && r.failed.is_none() && r.notice_24h.is_none()
    })
}

#[derive(Deserialize)]
struct ListQuery {
    f: Option<String>,
    page: Option<usize>,
    q: Option<String>,
}

async fn list(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let folder = q.f.unwrap_or_else(|| INBOX.to_string());
    let search = q.q.unwrap_or_default().trim().to_lowercase();
    let page = q.page.unwrap_or(1).max(1);
    let (f, a, s) = (folder.clone(), address.clone(), search.clone());
    let (rows, total, txs) = blocking(&panel, move |p| {
        let all = p.summaries(&a, &f)?;
        let matching: Vec<_> = all
            .into_iter()
            .filter(|(_, s)| search.is_empty() || s.haystack.contains(&search))
            .collect();
        let total = matching.len();
        let rows: Vec<_> = matching
            .into_iter()
            .skip((page - 1) * PAGE)
            .take(PAGE)
            .collect();
        let mut txs = Vec::new();
        if f == SENT {
            for (meta, s) in &rows {
                let id = s.message_id.as_deref().unwrap_or_default();
                if let Some(tx) = p.provider.store.transaction(id).ok().flatten() {
                    txs.push((meta.uid, tx));
                }
            }
        }
        Ok((rows, total, txs))
    })
    .await?;
    let search = s;
    let pages = total.div_ceil(PAGE).max(1);
    let is_sent = folder == SENT;
    let deletable = folder != INBOX && folder != SENT;
    let count_text = match (ctx.lang, total) {
        (ui::Lang::It, 1) => "1 messaggio".to_string(),
        (ui::Lang::It, n) => format!("{n} messaggi"),
        (ui::Lang::En, 1) => "1 message".to_string(),
        (ui::Lang::En, n) => format!("{n} messages"),
    };
    let page_link = |n: usize| {
        format!(
            "/mail?f={}&page={n}{}",
            percent_encode(&folder),
            if search.is_empty() {
                String::new()
            } else {
                format!("&q={}", percent_encode(&search))
            }
        )
    };
    let actions = html! {
        form.search method="get" action="/mail" role="search" {
            input type="hidden" name="f" value=(folder);
            input type="search" name="q" value=(search) placeholder=(ctx.t("Cerca mittente, destinatario, oggetto", "Search sender, recipient, subject"));
            button.btn type="submit" { (ctx.t("Cerca", "Search")) }
        }
        a.btn href=(format!("/mail/mbox?f={}", percent_encode(&folder))) { (ctx.t("Esporta .mbox", "Export .mbox")) }
    };
    let body = html! {
        (ui::heading(&folder_label(&ctx, &folder), Some(&count_text), actions))
        div.card.flush {
            @if rows.is_empty() {
                div.empty {
                    @if search.is_empty() { (ctx.t("Nessun messaggio in questa cartella.", "No messages in this folder.")) }
                    @else { (ctx.t("Nessun messaggio corrisponde alla ricerca.", "No message matches the search.")) }
                }
            } @else {
                ul.msglist {
                    @for (meta, s) in &rows {
                        @let unread = !meta.flags.iter().any(|f| f == SEEN);
                        @let (class, label) = badge(ctx.lang, s.kind, s.malformed);
                        li.unread[unread] {
                            a.row href=(msg_url(&folder, meta.uid)) {
                                span.sender {
                                    @if is_sent { (ctx.t("A: ", "To: ")) (s.to) } @else { (s.from) }
                                }
                                span.subj { @if s.subject.is_empty() { span.muted { (ctx.t("(senza oggetto)", "(no subject)")) } } @else { (s.subject) } }
                                span.when { (ui::time_short(meta.internal_date)) }
                                span.chips {
                                    @if !is_sent { span class=(format!("badge {class}")) { (label) } }
                                    @if s.has_attachments { span.badge.plain { span.icon.i-attach {} (ctx.t("allegati", "attachments")) } }
                                    @if let Some((_, tx)) = txs.iter().find(|(u, _)| *u == meta.uid) {
                                        @for r in &tx.recipients {
                                            @let (c, code, l) = recipient_state(&ctx, r);
                                            span class=(format!("badge rcpt-state {c}")) data-state=(code) title=(r.address) { (r.address) ": " (l) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if pages > 1 {
                div.pager {
                    @if page > 1 { a.btn.small href=(page_link(page - 1)) { "← " (ctx.t("Precedenti", "Newer")) } } @else { span {} }
                    span { (ctx.t("Pagina", "Page")) " " (page) " / " (pages) }
                    @if page < pages { a.btn.small href=(page_link(page + 1)) { (ctx.t("Successivi", "Older")) " →" } } @else { span {} }
                }
            }
        }
        div.grid.two {
            div.card {
                h2 { (ctx.t("Nuova cartella", "New folder")) }
                form.toolbar method="post" action="/mail/folders" {
                    (csrf(&ctx))
                    input type="text" name="name" maxlength="100" required placeholder=(ctx.t("Nome della cartella", "Folder name"));
                    button.btn type="submit" { (ctx.t("Crea", "Create")) }
                }
            }
            @if deletable {
                div.card {
                    h2 { (ctx.t("Elimina questa cartella", "Delete this folder")) }
                    details.danger-zone {
                        summary { (ctx.t("La cartella e i suoi messaggi saranno eliminati", "The folder and its messages will be deleted")) }
                        form.toolbar method="post" action="/mail/folders/delete" {
                            (csrf(&ctx))
                            input type="hidden" name="name" value=(folder);
                            button.btn.danger type="submit" { (ctx.t("Elimina cartella", "Delete folder")) }
                        }
                    }
                }
            }
        }
    };
    Ok(ui::page(
        &panel,
        &ctx,
        &folder_label(&ctx, &folder),
        Nav::Holder(folder),
        body,
    ))
}

#[derive(Deserialize)]
struct MsgQuery {
    f: String,
    uid: u32,
}

async fn read(State(panel): State<Arc<Panel>>, ctx: Ctx, Query(q): Query<MsgQuery>) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let (f, a) = (q.f.clone(), address.clone());
    let uid = q.uid;
    let (raw, meta, folders, tx, related) = blocking(&panel, move |p| {
        let store = &p.provider.store;
        let raw = store.fetch(&a, &f, uid)?.ok_or(PanelError::NotFound)?;
        let meta = store
            .list(&a, &f)?
            .into_iter()
            .find(|m| m.uid == uid)
            .ok_or(PanelError::NotFound)?;
        if !meta.flags.iter().any(|x| x == SEEN) {
            let mut flags = meta.flags.clone();
            flags.push(SEEN.into());
            store.set_flags(&a, &f, uid, &flags)?;
        }
        let folders: Vec<String> = store.folders(&a)?.into_iter().map(|(n, _)| n).collect();
        let summary = mailview::summarize(&raw);
        // The transaction this message belongs to, and the other messages about it.
        let ident = match summary.kind {
            Some(_) => summary.identificativo.clone(),
            None if f == SENT => summary.message_id.clone(),
            None => None,
        };
        let tx = ident
            .as_deref()
            .and_then(|id| store.transaction(id).ok().flatten());
        let mut related = Vec::new();
        if let Some(id) = &ident {
            for folder in [INBOX, SENT] {
                for (m, s) in p.summaries(&a, folder)? {
                    let same = s.identificativo.as_deref() == Some(id.as_str())
                        || (folder == SENT && s.message_id.as_deref() == Some(id.as_str()));
                    if same && !(folder == f && m.uid == uid) {
                        related.push((folder.to_string(), m, s));
                    }
                }
            }
            related.sort_by_key(|(_, m, _)| m.internal_date);
        }
        Ok((raw, meta, folders, tx, related))
    })
    .await?;
    let anchors = panel.anchors();
    let detail = tokio::task::spawn_blocking(move || mailview::detail(&raw, anchors))
        .await
        .map_err(|e| PanelError::Internal(e.to_string()))?;
    let folder = q.f;
    let kind = detail.class.kind();
    let (bclass, blabel) = if kind.is_none() && folder == SENT {
        ("busta", ctx.t("PEC inviata", "Sent PEC"))
    } else {
        badge(
            ctx.lang,
            kind,
            detail.class.class == crate::pec::classify::Class::Malformed,
        )
    };
    let is_busta = matches!(kind, Some(crate::pec::kind::MessageKind::BustaTrasporto));
    let main = if is_busta {
        detail
            .original
            .clone()
            .unwrap_or_else(|| detail.outer.clone())
    } else {
        detail.outer.clone()
    };
    let refresh = tx.as_ref().filter(|t| pending(t)).map(|_| 10);
    let reply_to = if is_busta {
        detail
            .class
            .daticert
            .as_ref()
            .map(|d| d.mittente.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let body = html! {
        div.toolbar {
            a.btn href=(folder_url(&folder)) { "← " (folder_label(&ctx, &folder)) }
            @if !reply_to.is_empty() {
                a.btn href=(format!("/mail/compose?to={}&subject={}", percent_encode(&reply_to), percent_encode(&format!("Re: {}", main.subject)))) { (ctx.t("Rispondi", "Reply")) }
            }
            a.btn href=(format!("/mail/eml?f={}&uid={}", percent_encode(&folder), meta.uid)) { (ctx.t("Esporta .eml", "Export .eml")) }
            form method="post" action="/mail/move" {
                (csrf(&ctx))
                input type="hidden" name="f" value=(folder);
                input type="hidden" name="uid" value=(meta.uid);
                select name="to" aria-label=(ctx.t("Sposta in", "Move to")) {
                    @for name in folders.iter().filter(|n| **n != folder) {
                        option value=(name) { (folder_label(&ctx, name)) }
                    }
                }
                button.btn type="submit" { (ctx.t("Sposta", "Move")) }
            }
            form method="post" action="/mail/unread" {
                (csrf(&ctx))
                input type="hidden" name="f" value=(folder);
                input type="hidden" name="uid" value=(meta.uid);
                button.btn type="submit" { (ctx.t("Segna come non letto", "Mark unread")) }
            }
            form method="post" action="/mail/delete" {
                (csrf(&ctx))
                input type="hidden" name="f" value=(folder);
                input type="hidden" name="uid" value=(meta.uid);
                button.btn.danger type="submit" { (ctx.t("Elimina", "Delete")) }
            }
        }
        div.card {
            div.msg-head {
                h1 { @if main.subject.is_empty() { (ctx.t("(senza oggetto)", "(no subject)")) } @else { (main.subject) } }
                span class=(format!("badge {bclass}")) data-kind=(kind.map(|k| k.code()).unwrap_or("ordinary")) { (blabel) }
            }
            dl.msg-meta {
                dt { (ctx.t("Da", "From")) } dd { (main.from) }
                dt { (ctx.t("A", "To")) } dd { (main.to) }
                @if !main.cc.is_empty() { dt { "Cc" } dd { (main.cc) } }
                dt { (ctx.t("Data", "Date")) } dd { (ui::time(main.date.unwrap_or(meta.internal_date))) }
                dt { (ctx.t("Firma", "Signature")) }
                dd {
                    @match &detail.signature {
                        None => span.muted { (ctx.t("non firmato", "not signed")) },
                        Some(Ok(v)) if v.is_valid() => span.sig-ok {
                            "✔ " (ctx.t("valida", "valid"))
                            @if let Some(s) = &v.signer { span.muted.small { " — " (s.subject) } }
                        },
                        Some(Ok(v)) => span.sig-bad {
                            "✖ " (ctx.t("non valida", "not valid")) ": " (v.problems().join("; "))
                        },
                        Some(Err(e)) => span.sig-bad { "✖ " (e) },
                    }
                }
            }
            @if is_busta {
                p.note { (ctx.t(
                    "Messaggio di posta elettronica certificata: il messaggio originale, certificato dal gestore del mittente, è riportato di seguito.",
                    "Certified e-mail: the original message, certified by the sender's provider, follows."
                )) }
            }
            pre.msg-body { (main.text) }
            @if !main.attachments.is_empty() {
                h3 { (ctx.t("Allegati", "Attachments")) }
                ul.attachments {
                    @for att in &main.attachments {
                        li { a href=(format!("/mail/part?f={}&uid={}&p={}", percent_encode(&folder), meta.uid, att.id)) title=(att.content_type) {
                            span.icon.i-attach {} (att.name) span.muted.small { " " (ui::size(att.size as u64)) }
                        } }
                    }
                }
            }
            @if is_busta && !detail.outer.attachments.is_empty() {
                details {
                    summary.muted.small { (ctx.t("Allegati tecnici della busta", "Technical parts of the envelope")) }
                    ul.attachments {
                        @for att in &detail.outer.attachments {
                            li { a href=(format!("/mail/part?f={}&uid={}&p={}", percent_encode(&folder), meta.uid, att.id)) {
                                (att.name) span.muted.small { " " (ui::size(att.size as u64)) }
                            } }
                        }
                    }
                }
            }
        }
        @if let Some(tx) = &tx {
            (delivery_card(&ctx, tx))
        }
        @if !related.is_empty() {
            div.card.flush {
                h2 { (ctx.t("Ricevute e messaggi collegati", "Receipts and related messages")) }
                ul.msglist.related {
                    @for (rf, m, s) in &related {
                        @let (c, l) = folder_badge(ctx.lang, rf, s);
                        li {
                            a.row href=(msg_url(rf, m.uid)) {
                                span.sender { span class=(format!("badge {c}")) { (l) } }
                                span.subj {
                                    (s.subject)
                                    @if let Some(to) = &s.consegna { span.muted { " — " (to) } }
                                }
                                span.when { (ui::time(m.internal_date)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(d) = &detail.class.daticert {
            div.card {
                h2 { (ctx.t("Dati di certificazione", "Certification data")) " " span.muted.small { "(daticert.xml)" } }
                table.kv {
                    tr { th { (ctx.t("Tipo", "Type")) } td { (d.tipo.as_str()) @if d.errore.as_str() != "nessuno" { " — " (ctx.t("errore", "error")) ": " (d.errore.as_str()) } } }
                    tr { th { (ctx.t("Mittente", "Sender")) } td { (d.mittente) } }
                    tr { th { (ctx.t("Destinatari", "Recipients")) } td {
                        @for r in &d.destinatari {
                            div { (r.indirizzo) " " span.muted.small { "(" (r.tipo.as_str()) ")" } }
                        }
                    } }
                    @if let Some(o) = &d.oggetto { tr { th { (ctx.t("Oggetto", "Subject")) } td { (o) } } }
                    tr { th { (ctx.t("Gestore emittente", "Issuing provider")) } td { (d.gestore_emittente) } }
                    tr { th { (ctx.t("Data e ora", "Date and time")) } td { (d.data.giorno()) " " (d.data.ora()) " (" (d.data.zona()) ")" } }
                    tr { th { (ctx.t("Identificativo", "Identifier")) } td.break { code { (d.identificativo) } } }
                    @if let Some(m) = &d.msgid { tr { th { "Message-ID" } td.break { code { (m) } } } }
                    @if let Some(r) = &d.ricevuta { tr { th { (ctx.t("Tipo di ricevuta", "Receipt type")) } td { (r.as_str()) } } }
                    @if let Some(c) = &d.consegna { tr { th { (ctx.t("Consegna a", "Delivered to")) } td { (c) } } }
                    @for r in &d.ricezione { tr { th { (ctx.t("Ricezione", "Reception")) } td { (r) } } }
                    @if let Some(e) = &d.errore_esteso { tr { th { (ctx.t("Errore esteso", "Extended error")) } td { (e) } } }
                }
                @for problem in &detail.class.problems {
                    p.note { (problem) }
                }
            }
        }
    };
    Ok(ui::page_with(
        &panel,
        &ctx,
        &main.subject,
        Nav::Holder(folder.clone()),
        body,
        PageOptions { refresh },
    ))
}

fn delivery_card(ctx: &Ctx, tx: &Transaction) -> Markup {
    let step = |done: Option<i64>, class: &str, label: &str| {
        html! {
            span class=(format!("step {}", if done.is_some() { class } else { "" })) title=(done.map(ui::time).unwrap_or_default()) {
                @if done.is_some() { "✔ " } (label)
            }
        }
    };
    html! {
        div.card.delivery {
            h2 { (ctx.t("Stato della consegna", "Delivery status")) }
            p.muted.small {
                (ctx.t("Accettato il", "Accepted on")) " " (ui::time(tx.accepted)) " · "
                (ctx.t("identificativo", "identifier")) " " code { (tx.identificativo) }
            }
            div.table-wrap {
                table {
                    thead { tr {
                        th { (ctx.t("Destinatario", "Recipient")) }
                        th { (ctx.t("Avanzamento", "Progress")) }
                        th { (ctx.t("Stato", "State")) }
                    } }
                    tbody {
                        @for r in &tx.recipients {
                            @let (class, code, label) = recipient_state(ctx, r);
                            tr.recipient data-recipient=(r.address) {
                                td.break { (r.address) @if !r.certified { br; span.muted.small { (ctx.t("non PEC", "non-PEC")) } } }
                                td { div.steps {
                                    (step(Some(tx.accepted), "done", ctx.t("Accettazione", "Acceptance")))
                                    @if r.certified {
                                        (step(r.presa_in_carico, "done", ctx.t("Presa in carico", "Taken in charge")))
                                        @if r.failed.is_some() {
                                            (step(r.failed, "fail", ctx.t("Mancata consegna", "Not delivered")))
                                        } @else if r.notice_24h.is_some() && r.consegna.is_none() {
                                            (step(r.notice_24h, "fail", ctx.t("Tempo scaduto", "Timed out")))
                                        } @else {
                                            @if r.notice_12h.is_some() && r.consegna.is_none() {
                                                (step(r.notice_12h, "warn", ctx.t("Preavviso 12 ore", "12-hour warning")))
                                            }
                                            (step(r.consegna, "done", ctx.t("Consegna", "Delivery")))
                                        }
                                    }
                                } }
                                td { span class=(format!("badge rcpt-state {class}")) data-state=(code) { (label) } }
                            }
                        }
                    }
                }
            }
            @if pending(tx) {
                p.muted.small { (ctx.t("La pagina si aggiorna da sola finché la consegna è in corso.", "This page refreshes itself while delivery is in progress.")) }
            }
        }
    }
}

#[derive(Deserialize)]
struct TrackQuery {
    id: String,
}

/// The sent copy of a transaction, by identificativo (where compose lands).
async fn track(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Query(q): Query<TrackQuery>,
) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let uid = blocking(&panel, move |p| {
        Ok(p.summaries(&address, SENT)?
            .into_iter()
            .find(|(_, s)| s.message_id.as_deref() == Some(q.id.as_str()))
            .map(|(m, _)| m.uid))
    })
    .await?
    .ok_or(PanelError::NotFound)?;
    Ok(Redirect::to(&msg_url(SENT, uid)).into_response())
}

async fn export_eml(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Query(q): Query<MsgQuery>,
) -> PanelResult {
    let address = ctx.holder()?;
    let raw = panel
        .provider
        .store
        .fetch(address, &q.f, q.uid)?
        .ok_or(PanelError::NotFound)?;
    let name = safe_filename(&format!("{}-{}", q.f, q.uid), "eml");
    Ok(download("message/rfc822", &name, raw.to_vec()))
}

#[derive(Deserialize)]
struct PartQuery {
    f: String,
    uid: u32,
    p: String,
}

/// An attachment, always as a download of opaque bytes (never rendered inline).
async fn part(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Query(q): Query<PartQuery>,
) -> PanelResult {
    let address = ctx.holder()?;
    let raw = panel
        .provider
        .store
        .fetch(address, &q.f, q.uid)?
        .ok_or(PanelError::NotFound)?;
    let (name, bytes) = mailview::attachment(&raw, &q.p).ok_or(PanelError::NotFound)?;
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !e.is_empty() && e.len() <= 8 => (s.to_string(), e.to_string()),
        _ => (name.clone(), "bin".to_string()),
    };
    let ext: String = ext.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let file = safe_filename(&stem, if ext.is_empty() { "bin" } else { &ext });
    Ok(download("application/octet-stream", &file, bytes))
}

#[derive(Deserialize)]
struct FolderQuery {
    f: String,
}

/// The folder as mboxrd: `From ` lines, `>`-quoted `From ` body lines, LF endings.
async fn export_mbox(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Query(q): Query<FolderQuery>,
) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let folder = q.f.clone();
    let mbox = blocking(&panel, move |p| {
        let store = &p.provider.store;
        let mut out = Vec::new();
        for meta in store.list(&address, &folder)? {
            let Some(raw) = store.fetch(&address, &folder, meta.uid)? else {
                continue;
            };
            append_mbox(&mut out, &raw, meta.internal_date);
        }
        Ok(out)
    })
    .await?;
    Ok(download(
        "application/mbox",
        &safe_filename(&q.f, "mbox"),
        mbox,
    ))
}

pub fn append_mbox(out: &mut Vec<u8>, raw: &[u8], date: i64) {
    let when = chrono::DateTime::from_timestamp(date, 0)
        .unwrap_or_default()
        .format("%a %b %e %H:%M:%S %Y");
    out.extend_from_slice(format!("From MAILER-DAEMON {when}\n").as_bytes());
    let text = raw
        .strip_suffix(b"\r\n")
        .or(raw.strip_suffix(b"\n"))
        .unwrap_or(raw);
    for line in text.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let unquoted = line.iter().position(|b| *b != b'>').unwrap_or(line.len());
        if line[unquoted..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[derive(Deserialize)]
struct MoveForm {
    f: String,
    uid: u32,
    to: String,
}

async fn move_message(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<MoveForm>,
) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let moved = panel.provider.store.atomically(|t| {
        let copied = t.copy(&address, &form.f, form.uid, &form.to)?;
        if copied.is_some() {
            t.remove(&address, &form.f, form.uid)?;
        }
        Ok(copied)
    })?;
    let uid = moved.ok_or(PanelError::NotFound)?;
    panel.sessions.flash(
        &ctx,
        Flash::ok(format!(
            "{} {}",
            ctx.t("Messaggio spostato in", "Message moved to"),
            folder_label(&ctx, &form.to)
        )),
    );
    Ok(Redirect::to(&msg_url(&form.to, uid)).into_response())
}

#[derive(Deserialize)]
struct MsgForm {
    f: String,
    uid: u32,
}

async fn delete_message(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<MsgForm>,
) -> PanelResult {
    let address = ctx.holder()?;
    if !panel.provider.store.remove(address, &form.f, form.uid)? {
        return Err(PanelError::NotFound);
    }
    panel.provider.store.flush()?;
    panel.sessions.flash(
        &ctx,
        Flash::ok(ctx.t("Messaggio eliminato.", "Message deleted.")),
    );
    Ok(Redirect::to(&folder_url(&form.f)).into_response())
}

async fn mark_unread(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<MsgForm>,
) -> PanelResult {
    let address = ctx.holder()?;
    let store = &panel.provider.store;
    let meta = store
        .list(address, &form.f)?
        .into_iter()
        .find(|m| m.uid == form.uid)
        .ok_or(PanelError::NotFound)?;
    let flags: Vec<String> = meta.flags.into_iter().filter(|f| f != SEEN).collect();
    store.set_flags(address, &form.f, form.uid, &flags)?;
    Ok(Redirect::to(&folder_url(&form.f)).into_response())
}

#[derive(Deserialize)]
struct FolderForm {
    name: String,
}

fn check_folder_name(name: &str) -> Option<String> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= 100
        && !name.chars().any(char::is_control)
        && !name.eq_ignore_ascii_case(INBOX);
    ok.then(|| name.to_string())
}

async fn create_folder(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<FolderForm>,
) -> PanelResult {
    let address = ctx.holder()?;
    let name = check_folder_name(&form.name)
        .ok_or_else(|| PanelError::BadRequest("invalid folder name".into()))?;
    match panel.provider.store.create_folder(address, &name) {
        Ok(_) => panel.sessions.flash(
            &ctx,
            Flash::ok(ctx.t("Cartella creata.", "Folder created.")),
        ),
        Err(crate::store::StoreError::FolderExists(_)) => panel.sessions.flash(
            &ctx,
            Flash::error(ctx.t("La cartella esiste già.", "The folder already exists.")),
        ),
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to(&folder_url(&name)).into_response())
}

async fn delete_folder(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<FolderForm>,
) -> PanelResult {
    let address = ctx.holder()?;
    if form.name == INBOX || form.name == SENT {
        return Err(PanelError::BadRequest(
            "INBOX and Sent cannot be deleted".into(),
        ));
    }
    if !panel.provider.store.delete_folder(address, &form.name)? {
        return Err(PanelError::NotFound);
    }
    panel.sessions.flash(
        &ctx,
        Flash::ok(ctx.t("Cartella eliminata.", "Folder deleted.")),
    );
    Ok(Redirect::to("/mail").into_response())
}

#[derive(Deserialize, Default)]
struct ComposeQuery {
    to: Option<String>,
    subject: Option<String>,
}

#[derive(Default)]
struct Draft {
    to: String,
    cc: String,
    subject: String,
    body: String,
    receipt: String,
}

async fn compose_page(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Query(q): Query<ComposeQuery>,
) -> PanelResult {
    ctx.holder()?;
    let draft = Draft {
        to: q.to.unwrap_or_default(),
        subject: q.subject.unwrap_or_default(),
        receipt: "completa".into(),
        ..Default::default()
    };
    Ok(compose_form(&panel, &ctx, &draft, None))
}

fn compose_form(panel: &Panel, ctx: &Ctx, d: &Draft, error: Option<&str>) -> Response {
    let max = panel.provider.config.delivery.max_message_bytes;
    let receipts = [
        (
            "completa",
            ctx.t("Completa", "Complete"),
            ctx.t(
                "con copia integrale del messaggio",
                "with a full copy of the message",
            ),
        ),
        (
            "breve",
            ctx.t("Breve", "Short"),
            ctx.t(
                "allegati sostituiti dalla loro impronta",
                "attachments replaced by their hash",
            ),
        ),
        (
            "sintetica",
            ctx.t("Sintetica", "Summary"),
            ctx.t("solo i dati di certificazione", "certification data only"),
        ),
    ];
    let body = html! {
        (ui::heading(ctx.t("Nuovo messaggio PEC", "New PEC message"), None, ui::empty()))
        @if let Some(e) = error { div.flash.error { (e) } }
        div.card {
            form method="post" action="/mail/compose" enctype="multipart/form-data" {
                (csrf(ctx))
                label {
                    span { (ctx.t("A", "To")) }
                    input type="text" name="to" value=(d.to) required autocomplete="off" spellcheck="false"
                        placeholder=(ctx.t("indirizzi separati da virgola", "addresses separated by commas"));
                }
                label {
                    span { "Cc" }
                    input type="text" name="cc" value=(d.cc) autocomplete="off" spellcheck="false";
                    small.hint { (ctx.t(
                        "La PEC non ammette destinatari in copia nascosta (Ccn).",
                        "PEC does not allow blind-copy (Bcc) recipients."
                    )) }
                }
                label {
                    span { (ctx.t("Oggetto", "Subject")) }
                    input type="text" name="subject" value=(d.subject) maxlength="500";
                }
                label {
                    span { (ctx.t("Testo", "Message")) }
                    textarea name="body" { (d.body) }
                }
                label {
                    span { (ctx.t("Allegati", "Attachments")) }
                    input type="file" name="attachment" multiple;
                    small.hint { (ctx.t("Dimensione massima complessiva", "Largest total size")) ": " (ui::size(max)) }
                }
                fieldset {
                    legend { (ctx.t("Ricevuta di avvenuta consegna", "Delivery receipt")) }
                    div.radios {
                        @for (value, label, hint) in receipts {
                            label title=(hint) {
                                input type="radio" name="receipt" value=(value) checked[d.receipt == value];
                                (label) span.muted.small { " — " (hint) }
                            }
                        }
                    }
                }
                div.form-actions {
                    button.btn.primary type="submit" { (ctx.t("Invia PEC", "Send PEC")) }
                    a.btn href="/mail" { (ctx.t("Annulla", "Cancel")) }
                }
            }
        }
    };
    ui::page(
        panel,
        ctx,
        ctx.t("Nuovo messaggio", "New message"),
        Nav::Holder("compose".into()),
        body,
    )
}

/// Addresses typed in To or Cc: separated by commas, semicolons or spaces; `<…>` allowed.
fn parse_recipients(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in text.split([',', ';', ' ', '\n', '\r', '\t']) {
        let item = item.trim().trim_start_matches('<').trim_end_matches('>');
        if item.is_empty() {
            continue;
        }
        match super::prefs::check_address(item) {
            Some(a) if !out.contains(&a) => out.push(a),
            Some(_) => {}
            None => return Err(item.to_string()),
        }
    }
    Ok(out)
}

fn guess_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("xml") => "application/xml",
        Some("p7m") => "application/pkcs7-mime",
        Some("txt") => "text/plain",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("zip") => "application/zip",
        Some("eml") => "message/rfc822",
        Some("doc") => "application/msword",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xls") => "application/vnd.ms-excel",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("odt") => "application/vnd.oasis.opendocument.text",
        Some("ods") => "application/vnd.oasis.opendocument.spreadsheet",
        _ => "application/octet-stream",
    }
}

/// Builds the holder's RFC 5322 message: From the holder, To and Cc, never Bcc.
pub fn build_message(
    from: &str,
    to: &[String],
    cc: &[String],
    subject: &str,
    body: &str,
    receipt: &str,
    attachments: Vec<(String, Vec<u8>)>,
) -> std::io::Result<Vec<u8>> {
    use mail_builder::headers::raw::Raw;
    let domain = crate::provider::domain_of(from).unwrap_or("localhost");
    let id = format!(
        "{}.{}@{domain}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        &super::files::random_token()[..16]
    );
    let mut b = mail_builder::MessageBuilder::new()
        .message_id(id)
        .from(from.to_string())
        .to(to.to_vec())
        .subject(subject.to_string())
        .header("X-TipoRicevuta", Raw::new(receipt.to_string()))
        .text_body(body.replace("\r\n", "\n"));
    if !cc.is_empty() {
        b = b.cc(cc.to_vec());
    }
    for (name, bytes) in attachments {
        b = b.attachment(guess_type(&name), name, bytes);
    }
    b.write_to_vec()
}

async fn compose(State(panel): State<Arc<Panel>>, ctx: Ctx, multipart: Multipart) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let limit = panel.provider.config.delivery.max_message_bytes as usize;
    let form = upload::read(&ctx, multipart, limit).await?;
    let draft = Draft {
        to: form.field("to").to_string(),
        cc: form.field("cc").to_string(),
        subject: form.field("subject").to_string(),
        body: form.field("body").to_string(),
        receipt: match form.field("receipt") {
            r @ ("breve" | "sintetica") => r.to_string(),
            _ => "completa".to_string(),
        },
    };
    let bad = |e: String| Ok(compose_form(&panel, &ctx, &draft, Some(&e)));
    let to = match parse_recipients(&draft.to) {
        Ok(to) if !to.is_empty() => to,
        Ok(_) => {
            return bad(ctx
                .t(
                    "Indica almeno un destinatario.",
                    "Give at least one recipient.",
                )
                .into())
        }
        Err(a) => {
            return bad(format!(
                "{}: {a}",
                ctx.t("Indirizzo non valido", "Invalid address")
            ))
        }
    };
    let cc = match parse_recipients(&draft.cc) {
        Ok(cc) => cc
            .into_iter()
            .filter(|a| !to.contains(a))
            .collect::<Vec<_>>(),
        Err(a) => {
            return bad(format!(
                "{}: {a}",
                ctx.t("Indirizzo non valido", "Invalid address")
            ))
        }
    };
    let attachments: Vec<(String, Vec<u8>)> = form
        .files
        .into_iter()
        .filter(|f| f.field == "attachment")
        .map(|f| (f.name, f.bytes))
        .collect();
    let message = build_message(
        &address,
        &to,
        &cc,
        &draft.subject,
        &draft.body,
        &draft.receipt,
        attachments,
    )?;
    let rcpts: Vec<String> = to.iter().chain(&cc).cloned().collect();
    let p = panel.provider.clone();
    let sender = address.clone();
    let outcome = tokio::task::spawn_blocking(move || p.submit(&sender, &sender, &rcpts, message))
        .await
        .map_err(|e| PanelError::Internal(e.to_string()))??;
    match outcome {
        Submission::Accepted { identificativo } => {
            panel.sessions.flash(
                &ctx,
                Flash::ok(ctx.t(
                    "Messaggio accettato: la ricevuta di accettazione è nella posta in arrivo.",
                    "Message accepted: the acceptance receipt is in your inbox.",
                )),
            );
            Ok(Redirect::to(&format!(
                "/mail/track?id={}",
                percent_encode(&identificativo)
            ))
            .into_response())
        }
        Submission::Refused { reason } => bad(format!(
            "{}: {reason}",
            ctx.t(
                "Messaggio non accettato (l'avviso di non accettazione è nella posta in arrivo)",
                "Message not accepted (the notice is in your inbox)"
            )
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_parsed_strictly() {
        assert_eq!(
            parse_recipients("a@pec.x.test, <B@pec.y.test>; a@pec.x.test").unwrap(),
            ["a@pec.x.test", "b@pec.y.test"]
        );
        assert_eq!(parse_recipients("nobody").unwrap_err(), "nobody");
        assert!(parse_recipients("").unwrap().is_empty());
    }

    #[test]
    fn built_message_has_no_bcc_and_the_receipt_type() {
        let raw = build_message(
            "alice@pec.x.test",
            &["bob@pec.y.test".into()],
            &["carol@pec.y.test".into()],
            "Prova",
            "Testo",
            "breve",
            vec![("a.pdf".into(), b"%PDF".to_vec())],
        )
        .unwrap();
        let h = crate::pec::original::OriginalHeaders::parse(&raw).unwrap();
        assert_eq!(h.from, ["alice@pec.x.test"]);
        assert_eq!(h.to, ["bob@pec.y.test"]);
        assert_eq!(h.cc, ["carol@pec.y.test"]);
        assert!(!h.has_bcc_field);
        assert_eq!(
            h.tipo_ricevuta,
            Some(crate::pec::daticert::TipoRicevuta::Breve)
        );
    }

    #[test]
    fn mbox_quotes_from_lines() {
        let mut out = Vec::new();
        append_mbox(
            &mut out,
            b"Subject: x\r\n\r\nFrom here\r\n>From there\r\n",
            0,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"));
        assert!(text.contains("\n>From here\n>>From there\n"));
    }
}
