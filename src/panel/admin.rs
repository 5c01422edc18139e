//! Administration: status, mailboxes, providers' index, certificates, outbound queue,
//! log search, settings, software update. Mailbox and index changes go through
//! `provider::admin` like the command line's.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;

use super::certs::{self, Role as CertRole};
use super::configfile::{self, Saved, Settings};
use super::log_view::{self, LogQuery};
use super::session::Ctx;
use super::ui::{self, csrf, Flash, Nav};
use super::{upload, Panel, PanelError, PanelResult};
use crate::provider::admin::{self as core_admin, parse_size, AdminRequest};
use crate::provider::auth::generate_password;
use crate::provider::{unix_now, Provider};
use crate::store::RecipientState;

const LDIF_LIMIT: usize = 2 * 1024 * 1024;
const CERT_LIMIT: usize = 256 * 1024;

pub fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/mailboxes", get(mailboxes).post(mailbox_add))
        .route("/admin/mailboxes/passwd", post(mailbox_passwd))
        .route("/admin/mailboxes/quota", post(mailbox_quota))
        .route("/admin/mailboxes/state", post(mailbox_state))
        .route("/admin/mailboxes/remove", post(mailbox_remove))
        .route("/admin/index", get(index))
        .route(
            "/admin/index/import",
            post(index_import).layer(DefaultBodyLimit::max(upload::body_limit(LDIF_LIMIT))),
        )
        .route("/admin/index/remove", post(index_remove))
        .route("/admin/index/export.ldif", get(index_export))
        .route("/admin/certs", get(certificates))
        .route("/admin/certs/renew", post(cert_renew))
        .route(
            "/admin/certs/upload",
            post(cert_upload).layer(DefaultBodyLimit::max(upload::body_limit(CERT_LIMIT))),
        )
        .route("/admin/queue", get(queue))
        .route("/admin/queue/retry", post(queue_retry))
        .route("/admin/queue/giveup", post(queue_give_up))
        .route("/admin/log", get(log))
        .route("/admin/settings", get(settings).post(settings_save))
        .route("/admin/password", post(admin_password))
        .route("/admin/update", get(update))
}

fn back(panel: &Panel, ctx: &Ctx, to: &str, flash: Flash) -> PanelResult {
    panel.sessions.flash(ctx, flash);
    Ok(Redirect::to(to).into_response())
}

// --- status ------------------------------------------------------------------------

/// (free, total) bytes of the file system holding `path`.
// statvfs field types differ between targets (u32 or u64): `u64::from` covers both.
#[allow(clippy::useless_conversion)]
fn disk_space(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid C string and `s` a writable statvfs the call fills in.
    let rc = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialized `s`.
    let s = unsafe { s.assume_init() };
    let frsize = u64::from(s.f_frsize);
    Some((
        u64::from(s.f_bavail).saturating_mul(frsize),
        u64::from(s.f_blocks).saturating_mul(frsize),
    ))
}

async fn dashboard(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    ctx.admin()?;
    let provider = &panel.provider;
    let config = &provider.config;
    let service = config.service_address();
    let mailboxes = provider.store.mailboxes()?;
    let holders = mailboxes.iter().filter(|m| m.address != service).count();
    let disabled = mailboxes
        .iter()
        .filter(|m| m.disabled && m.address != service)
        .count();
    let queue = provider.store.queue()?;
    let waiting: usize = queue
        .iter()
        .map(|e| {
            e.recipients
                .iter()
                .filter(|r| r.state == RecipientState::Pending)
                .count()
        })
        .sum();
    let open = provider.store.open_transactions()?.len();
    let data_dir = config.data_dir();
    let (store_size, disk, registro) = {
        let (s, d, p) = (config.store_dir(), data_dir.clone(), provider.clone());
        tokio::task::spawn_blocking(move || {
            (
                crate::store::dir_size(&s),
                disk_space(&d),
                p.registro.summary().ok(),
            )
        })
        .await
        .unwrap_or((0, None, None))
    };
    // The daemon does not start unless every configured listener is bound.
    let listeners: Vec<(&str, Option<String>, Option<bool>)> = Settings::of(config)
        .listen
        .into_iter()
        .map(|(name, addr)| {
            let up = addr.as_ref().map(|_| true);
            (name, addr, up)
        })
        .collect();
    let uptime = panel.started.elapsed().as_secs();
    let lang = ctx.lang;
    let body = html! {
        (ui::heading(ctx.t("Stato del servizio", "Service status"), Some(&format!("{} · {}", config.provider.name, config.provider.domains.join(", "))), html! {
            a.btn href="/admin/mailboxes" { (ctx.t("Nuova casella", "New mailbox")) }
        }))
        div.stats {
            div.stat { div.label { (ctx.t("Caselle", "Mailboxes")) } div.value { (holders) }
                div.sub { @if disabled > 0 { (disabled) " " (ctx.t("disabilitate", "disabled")) } @else { (ctx.t("tutte attive", "all active")) } } }
            div.stat { div.label { (ctx.t("In coda", "Queued")) } div.value { (waiting) }
                div.sub { (queue.len()) " " (ctx.t("messaggi in uscita", "outbound messages")) } }
            div.stat { div.label { (ctx.t("Trasmissioni aperte", "Open transmissions")) } div.value { (open) }
                div.sub { (ctx.t("in attesa di ricevute", "awaiting receipts")) } }
            div.stat { div.label { (ctx.t("Archivio", "Store")) } div.value { (ui::size(store_size)) }
                div.sub { @if let Some((free, _)) = disk { (ui::size(free)) " " (ctx.t("liberi", "free")) } } }
            div.stat { div.label { (ctx.t("Attivo da", "Up for")) } div.value.small-value { (ui::duration(lang, uptime)) }
                div.sub { (ctx.t("dal", "since")) " " (ui::time(panel.started_at.timestamp())) } }
        }
        div.grid.two {
            div.card.flush {
                h2 { (ctx.t("Servizi in ascolto", "Listeners")) }
                div.table-wrap { table {
                    thead { tr { th { (ctx.t("Servizio", "Service")) } th { (ctx.t("Indirizzo", "Address")) } th { (ctx.t("Stato", "State")) } } }
                    tbody {
                        @for (name, addr, up) in &listeners {
                            tr {
                                td { strong { (listener_label(&ctx, name)) } br; span.muted.small { (name) } }
                                td.mono { (addr.clone().unwrap_or_else(|| "—".into())) }
                                td { @match up {
                                    Some(true) => span.badge.ok { (ctx.t("in ascolto", "listening")) },
                                    Some(false) => span.badge.err { (ctx.t("non risponde", "not answering")) },
                                    None => span.badge.pending { (ctx.t("disattivato", "disabled")) },
                                } }
                            }
                        }
                    }
                } }
            }
            div.card {
                h2 { (ctx.t("Sistema", "System")) }
                table.kv {
                    tr { th { (ctx.t("Versione", "Version")) } td { "pecbox " (env!("CARGO_PKG_VERSION")) } }
                    tr { th { (ctx.t("Gestore", "Provider")) } td { (config.provider.name) } }
                    tr { th { (ctx.t("Domini PEC", "PEC domains")) } td { (config.provider.domains.join(", ")) } }
                    tr { th { "Hostname" } td { (config.provider.hostname) } }
                    tr { th { (ctx.t("Casella di servizio", "Service mailbox")) } td { (service) } }
                    tr { th { (ctx.t("Cartella dati", "Data folder")) } td.mono.break { (data_dir.display()) } }
                    tr { th { (ctx.t("Disco", "Disk")) } td { @if let Some((free, total)) = disk { (ui::size(free)) " " (ctx.t("liberi su", "free of")) " " (ui::size(total)) } @else { "—" } } }
                    tr { th { (ctx.t("Conservazione dei log", "Log retention")) } td { (config.retention.months) " " (ctx.t("mesi", "months")) } }
                    tr { th { (ctx.t("Registro dei log", "Provider's log")) } td.registro-summary {
                        @match &registro {
                            Some(r) if !r.months.is_empty() => {
                                (r.records) " " (if r.records == 1 { ctx.t("evento", "event") } else { ctx.t("eventi", "events") })
                                ", " (r.months.len()) " " (if r.months.len() == 1 { ctx.t("mese", "month") } else { ctx.t("mesi", "months") })
                                " (" (r.months[0])
                                @if r.months.len() > 1 { " – " (r.months[r.months.len() - 1]) }
                                "), " (ui::size(r.bytes))
                                br;
                                span.muted.small { (ctx.t("ultimo mese sigillato", "last sealed month")) ": "
                                    (r.last_sealed.clone().unwrap_or_else(|| "—".into())) }
                            }
                            Some(_) => (ctx.t("nessun evento ancora", "no event yet")),
                            None => "—",
                        }
                    } }
                    tr { th { (ctx.t("Configurazione", "Configuration")) } td.mono.break {
                        (config.source.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| ctx.t("predefinita (demo)", "built-in (demo)").to_string()))
                        @if let Some((path, _)) = &config.layers.overrides {
                            br; "+ " (crate::config::display_path(path).display())
                        }
                    } }
                }
                div.downloads {
                    a.btn.small href="/ca.pem" { (ctx.t("Certificato CA", "CA certificate")) }
                    a.btn.small href="/index-entry.ldif" { (ctx.t("Voce nell'indice dei gestori", "Index entry")) }
                }
            }
        }
    };
    Ok(ui::page(
        &panel,
        &ctx,
        ctx.t("Stato", "Status"),
        Nav::Admin("dashboard"),
        body,
    ))
}

fn listener_label(ctx: &Ctx, name: &str) -> &'static str {
    match name {
        "smtp" => ctx.t("Punto di ricezione (SMTP)", "Reception point (SMTP)"),
        "submissions" => ctx.t("Punto di accesso (SMTPS)", "Access point (SMTPS)"),
        "submission" => ctx.t("Punto di accesso (STARTTLS)", "Access point (STARTTLS)"),
        "imaps" => "IMAPS",
        "pop3s" => "POP3S",
        "panel" => ctx.t("Pannello web (HTTPS)", "Web panel (HTTPS)"),
        _ => "",
    }
}

// --- mailboxes ---------------------------------------------------------------------

async fn mailboxes(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    ctx.admin()?;
    let store = &panel.provider.store;
    let config = &panel.provider.config;
    let service = config.service_address();
    let mut rows = Vec::new();
    for m in store.mailboxes()? {
        if m.address == service {
            continue;
        }
        let used = store.usage(&m.address).unwrap_or(0);
        rows.push((m, used));
    }
    let body = html! {
        (ui::heading(ctx.t("Caselle PEC", "PEC mailboxes"), Some(&format!("{} {}", rows.len(), ctx.t("caselle", "mailboxes"))), ui::empty()))
        div.card {
            h2 { (ctx.t("Nuova casella", "New mailbox")) }
            form method="post" action="/admin/mailboxes" {
                (csrf(&ctx))
                div.row3 {
                    label { span { (ctx.t("Nome casella", "Mailbox name")) }
                        input type="text" name="local" required autocapitalize="none" spellcheck="false" placeholder="mario.rossi"; }
                    label { span { (ctx.t("Dominio", "Domain")) }
                        select name="domain" { @for d in &config.provider.domains { option value=(d) { "@" (d) } } } }
                    label { span { (ctx.t("Spazio", "Quota")) }
                        input type="text" name="quota" placeholder=(ctx.t("es. 2G (vuoto: illimitato)", "e.g. 2G (empty: unlimited)")); }
                }
                label { span { "Password" }
                    input type="password" name="password" autocomplete="new-password" minlength="8"
                        placeholder=(ctx.t("vuota: ne viene generata una", "empty: one is generated"));
                }
                button.btn.primary type="submit" { (ctx.t("Crea casella", "Create mailbox")) }
            }
        }
        div.card.flush {
            div.table-wrap { table.mailboxes {
                thead { tr {
                    th { (ctx.t("Casella", "Mailbox")) }
                    th { (ctx.t("Stato", "State")) }
                    th { (ctx.t("Spazio", "Storage")) }
                    th { (ctx.t("Posta ordinaria", "Ordinary mail")) }
                    th { (ctx.t("Azioni", "Actions")) }
                } }
                tbody {
                    @if rows.is_empty() { tr { td colspan="5" { div.empty { (ctx.t("Nessuna casella: creane una qui sopra.", "No mailbox yet: create one above.")) } } } }
                    @for (m, used) in &rows {
                        tr data-address=(m.address) {
                            td { strong { (m.address) } br; span.muted.small { (ctx.t("creata il", "created")) " " (ui::time(m.created)) } }
                            td { @if m.disabled { span.badge.err { (ctx.t("disabilitata", "disabled")) } } @else { span.badge.ok { (ctx.t("attiva", "active")) } } }
                            td.nowrap {
                                (ui::size(*used))
                                @if let Some(q) = m.quota { " / " (ui::size(q)) br; meter min="0" max=(q) value=((*used).min(q)) low=(q * 7 / 10) high=(q * 9 / 10) optimum="0" {} }
                            }
                            td.small { (match &m.ordinary_mail {
                                crate::store::OrdinaryMailPolicy::Refuse => ctx.t("rifiutata", "refused").to_string(),
                                crate::store::OrdinaryMailPolicy::Anomalia => ctx.t("accettata (anomalia)", "accepted (anomaly)").to_string(),
                                crate::store::OrdinaryMailPolicy::Forward(to) => format!("{} {to}", ctx.t("inoltrata a", "forwarded to")),
                            }) }
                            td { (mailbox_actions(&ctx, &m.address, m.disabled, m.quota)) }
                        }
                    }
                }
            } }
        }
    };
    Ok(ui::page(
        &panel,
        &ctx,
        ctx.t("Caselle", "Mailboxes"),
        Nav::Admin("mailboxes"),
        body,
    ))
}

fn mailbox_actions(ctx: &Ctx, address: &str, disabled: bool, quota: Option<u64>) -> Markup {
    html! {
        details.actions-menu {
            summary.btn.small { (ctx.t("Gestisci", "Manage")) }
            div.menu-body {
                form method="post" action="/admin/mailboxes/passwd" {
                    (csrf(ctx))
                    input type="hidden" name="address" value=(address);
                    label { span { (ctx.t("Nuova password", "New password")) }
                        input type="password" name="password" autocomplete="new-password" placeholder=(ctx.t("vuota: generata", "empty: generated")); }
                    button.btn.small type="submit" { (ctx.t("Reimposta password", "Reset password")) }
                }
                form method="post" action="/admin/mailboxes/quota" {
                    (csrf(ctx))
                    input type="hidden" name="address" value=(address);
                    label { span { (ctx.t("Spazio", "Quota")) }
                        input type="text" name="quota" value=(quota.map(|q| q.to_string()).unwrap_or_default()) placeholder=(ctx.t("vuoto: illimitato", "empty: unlimited")); }
                    button.btn.small type="submit" { (ctx.t("Imposta spazio", "Set quota")) }
                }
                form method="post" action="/admin/mailboxes/state" {
                    (csrf(ctx))
                    input type="hidden" name="address" value=(address);
                    input type="hidden" name="disabled" value=(if disabled { "0" } else { "1" });
                    button.btn.small type="submit" { @if disabled { (ctx.t("Riattiva", "Enable")) } @else { (ctx.t("Disabilita", "Disable")) } }
                }
                form method="post" action="/admin/mailboxes/remove" {
                    (csrf(ctx))
                    input type="hidden" name="address" value=(address);
                    label { span { (ctx.t("Per eliminare scrivi l'indirizzo", "To remove, type the address")) }
                        input type="text" name="confirm" autocomplete="off"; }
                    button.btn.small.danger type="submit" { (ctx.t("Elimina casella", "Remove mailbox")) }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct AddForm {
    local: String,
    domain: String,
    #[serde(default)]
    quota: String,
    #[serde(default)]
    password: String,
}

fn parse_quota(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t.is_empty() {
        Ok(None)
    } else {
        parse_size(t).map(Some)
    }
}

/// Runs an admin request off the async threads (hashing a password takes a while).
async fn execute(panel: &Panel, request: AdminRequest) -> core_admin::AdminResponse {
    let p = panel.provider.clone();
    tokio::task::spawn_blocking(move || core_admin::execute(&p.store, &p.config, request))
        .await
        .unwrap_or_else(|e| core_admin::AdminResponse::error(e.to_string()))
}

/// Creates a mailbox; Ok((address, generated password)).
pub(super) async fn create_mailbox(
    panel: &Panel,
    address: &str,
    password: Option<String>,
    quota: Option<u64>,
) -> Result<(String, Option<String>), String> {
    let generated = password.is_none().then(generate_password);
    let r = execute(
        panel,
        AdminRequest::MailboxAdd {
            address: address.to_string(),
            password: password.or(generated.clone()),
            quota,
        },
    )
    .await;
    if !r.ok {
        return Err(r.text);
    }
    let created = r
        .text
        .trim()
        .strip_prefix("created ")
        .unwrap_or(address)
        .lines()
        .next()
        .unwrap_or(address)
        .to_string();
    Ok((created, generated))
}

async fn mailbox_add(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<AddForm>,
) -> PanelResult {
    ctx.admin()?;
    let quota = match parse_quota(&form.quota) {
        Ok(q) => q,
        Err(e) => return back(&panel, &ctx, "/admin/mailboxes", Flash::error(e)),
    };
    let local = form.local.trim();
    let address = if local.contains('@') {
        local.to_string()
    } else {
        format!("{local}@{}", form.domain.trim())
    };
    let password = Some(form.password).filter(|p| !p.is_empty());
    match create_mailbox(&panel, &address, password, quota).await {
        Ok((address, generated)) => {
            let text = format!("{} {address}", ctx.t("Casella creata:", "Mailbox created:"));
            let flash = match generated {
                Some(p) => Flash::ok(format!(
                    "{text}. {}",
                    ctx.t(
                        "Password generata (mostrata una sola volta):",
                        "Generated password (shown once):"
                    )
                ))
                .with_secret(p),
                None => Flash::ok(text),
            };
            back(&panel, &ctx, "/admin/mailboxes", flash)
        }
        Err(e) => back(&panel, &ctx, "/admin/mailboxes", Flash::error(e)),
    }
}

#[derive(Deserialize)]
struct PasswdForm {
    address: String,
    #[serde(default)]
    password: String,
}

async fn mailbox_passwd(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<PasswdForm>,
) -> PanelResult {
    ctx.admin()?;
    let generated = form.password.is_empty().then(generate_password);
    let password = generated.clone().unwrap_or(form.password);
    let r = execute(
        &panel,
        AdminRequest::MailboxPasswd {
            address: form.address.clone(),
            password,
        },
    )
    .await;
    if !r.ok {
        return back(&panel, &ctx, "/admin/mailboxes", Flash::error(r.text));
    }
    panel
        .sessions
        .end_holder(&form.address.to_ascii_lowercase(), None);
    let text = format!(
        "{} {}",
        ctx.t("Password reimpostata per", "Password reset for"),
        form.address
    );
    let flash = match generated {
        Some(p) => Flash::ok(format!(
            "{text}. {}",
            ctx.t("Nuova password:", "New password:")
        ))
        .with_secret(p),
        None => Flash::ok(text),
    };
    back(&panel, &ctx, "/admin/mailboxes", flash)
}

#[derive(Deserialize)]
struct QuotaForm {
    address: String,
    #[serde(default)]
    quota: String,
}

async fn mailbox_quota(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<QuotaForm>,
) -> PanelResult {
    ctx.admin()?;
    let quota = match parse_quota(&form.quota) {
        Ok(q) => q,
        Err(e) => return back(&panel, &ctx, "/admin/mailboxes", Flash::error(e)),
    };
    let store = &panel.provider.store;
    let mut m = store.mailbox(&form.address)?.ok_or(PanelError::NotFound)?;
    m.quota = quota;
    store.put_mailbox(&m)?;
    store.flush()?;
    back(
        &panel,
        &ctx,
        "/admin/mailboxes",
        Flash::ok(format!(
            "{}: {}",
            m.address,
            ctx.t("spazio aggiornato", "quota updated")
        )),
    )
}

#[derive(Deserialize)]
struct StateForm {
    address: String,
    disabled: String,
}

async fn mailbox_state(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<StateForm>,
) -> PanelResult {
    ctx.admin()?;
    let store = &panel.provider.store;
    let mut m = store.mailbox(&form.address)?.ok_or(PanelError::NotFound)?;
    if m.address == panel.provider.config.service_address() {
        return Err(PanelError::BadRequest(
            "the service mailbox stays disabled".into(),
        ));
    }
    m.disabled = form.disabled == "1";
    store.put_mailbox(&m)?;
    store.flush()?;
    if m.disabled {
        panel.sessions.end_holder(&m.address, None);
    }
    let what = if m.disabled {
        ctx.t("disabilitata", "disabled")
    } else {
        ctx.t("riattivata", "enabled")
    };
    back(
        &panel,
        &ctx,
        "/admin/mailboxes",
        Flash::ok(format!("{} {what}", m.address)),
    )
}

#[derive(Deserialize)]
struct RemoveForm {
    address: String,
    #[serde(default)]
    confirm: String,
}

async fn mailbox_remove(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<RemoveForm>,
) -> PanelResult {
    ctx.admin()?;
    if !form
        .confirm
        .trim()
        .eq_ignore_ascii_case(form.address.trim())
    {
        return back(
            &panel,
            &ctx,
            "/admin/mailboxes",
            Flash::error(ctx.t(
                "Per eliminare la casella scrivi il suo indirizzo nel campo di conferma.",
                "To remove the mailbox, type its address in the confirmation field.",
            )),
        );
    }
    let r = execute(
        &panel,
        AdminRequest::MailboxRemove {
            address: form.address.clone(),
        },
    )
    .await;
    if !r.ok {
        return back(&panel, &ctx, "/admin/mailboxes", Flash::error(r.text));
    }
    panel
        .sessions
        .end_holder(&form.address.to_ascii_lowercase(), None);
    back(
        &panel,
        &ctx,
        "/admin/mailboxes",
        Flash::ok(r.text.trim().to_string()),
    )
}

// --- providers' index --------------------------------------------------------------

async fn index(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    ctx.admin()?;
    let own = panel.provider.own_index_entry();
    let providers = panel.provider.store.providers()?;
    let own_ldif = crate::provider::index::entry_to_ldif(&own);
    let body = html! {
        (ui::heading(ctx.t("Indice dei gestori", "Providers' index"), Some(ctx.t(
            "I gestori PEC noti a questo box: i loro domini ricevono buste certificate e le loro firme sono riconosciute.",
            "The PEC providers this box knows: their domains receive certified envelopes and their signatures are trusted."
        )), html! {
            a.btn href="/admin/index/export.ldif" { (ctx.t("Esporta tutto (LDIF)", "Export all (LDIF)")) }
        }))
        div.card.flush {
            div.table-wrap { table {
                thead { tr { th { (ctx.t("Gestore", "Provider")) } th { (ctx.t("Domini", "Domains")) } th { (ctx.t("Casella ricevute", "Receipt mailbox")) } th { (ctx.t("Certificati", "Certificates")) } th {} } }
                tbody {
                    @for p in &providers {
                        tr {
                            td { strong { (p.name) } @if p.name == own.name { " " span.badge.plain { (ctx.t("questo box", "this box")) } } }
                            td.small { (p.domains.join(", ")) }
                            td.small { (p.mail_receipt) }
                            td.small.mono.break { @for (i, h) in p.certificate_hashes.iter().enumerate() {
                                @let validity = p.certificates.get(i).and_then(|d| certs::info_der(d));
                                div { (h) @if let Some(v) = validity { br; span.muted { (ctx.t("valido fino al", "valid until")) " " (ui::time(v.not_after)) } } }
                            } }
                            td { @if p.name != own.name {
                                form method="post" action="/admin/index/remove" {
                                    (csrf(&ctx))
                                    input type="hidden" name="name" value=(p.name);
                                    button.btn.small.danger type="submit" { (ctx.t("Rimuovi", "Remove")) }
                                }
                            } }
                        }
                    }
                }
            } }
        }
        div.grid.two {
            div.card {
                h2 { (ctx.t("Importa voci (LDIF)", "Import entries (LDIF)")) }
                p.muted.small { (ctx.t(
                    "Un file LDIF con le voci di altri gestori (anche firmato .p7m). Una voce con lo stesso nome sostituisce la precedente.",
                    "An LDIF file with other providers' entries (a signed .p7m too). An entry with the same name replaces the old one."
                )) }
                form method="post" action="/admin/index/import" enctype="multipart/form-data" {
                    (csrf(&ctx))
                    label { span { (ctx.t("File", "File")) } input type="file" name="file" accept=".ldif,.p7m,.txt" required; }
                    small.hint { (ctx.t("Al massimo", "At most")) " " (ui::size(LDIF_LIMIT as u64)) }
                    div.form-actions { button.btn.primary type="submit" { (ctx.t("Importa", "Import")) } }
                }
            }
            div.card {
                h2 { (ctx.t("La voce di questo gestore", "This provider's entry")) }
                p.muted.small { (ctx.t("Da consegnare agli altri gestori perché riconoscano questo box.", "Give it to other providers so that they recognise this box.")) }
                pre.ldif { (own_ldif) }
                a.btn href="/index-entry.ldif" { (ctx.t("Scarica", "Download")) }
            }
        }
    };
    Ok(ui::page(
        &panel,
        &ctx,
        ctx.t("Indice dei gestori", "Providers' index"),
        Nav::Admin("index"),
        body,
    ))
}

async fn index_import(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    multipart: Multipart,
) -> PanelResult {
    ctx.admin()?;
    let form = upload::read(&ctx, multipart, LDIF_LIMIT).await?;
    let Some(file) = form.file("file") else {
        return back(
            &panel,
            &ctx,
            "/admin/index",
            Flash::error(ctx.t("Nessun file scelto.", "No file chosen.")),
        );
    };
    let mut anchors =
        crate::smime::pem_certificates(&panel.provider.identity.ca_pem).unwrap_or_default();
    for p in panel.provider.store.providers()? {
        anchors.extend(p.certificates);
    }
    let r = execute(
        &panel,
        AdminRequest::IndexImport {
            contents: file.bytes.clone(),
            anchors,
        },
    )
    .await;
    let flash = if r.ok {
        let names: Vec<&str> = r
            .text
            .lines()
            .map(|l| l.trim().strip_prefix("imported ").unwrap_or(l.trim()))
            .filter(|l| !l.is_empty())
            .collect();
        Flash::ok(format!(
            "{}: {}",
            ctx.t("Voci importate", "Entries imported"),
            names.join("; ")
        ))
    } else {
        Flash::error(r.text)
    };
    back(&panel, &ctx, "/admin/index", flash)
}

#[derive(Deserialize)]
struct NameForm {
    name: String,
}

async fn index_remove(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<NameForm>,
) -> PanelResult {
    ctx.admin()?;
    if form.name == panel.provider.config.provider.name {
        return Err(PanelError::BadRequest(
            "this provider's own entry stays".into(),
        ));
    }
    if !panel.provider.store.remove_provider(&form.name)? {
        return Err(PanelError::NotFound);
    }
    panel.provider.store.flush()?;
    back(
        &panel,
        &ctx,
        "/admin/index",
        Flash::ok(format!("{} {}", ctx.t("Rimosso:", "Removed:"), form.name)),
    )
}

async fn index_export(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    ctx.admin()?;
    let providers = panel.provider.store.providers()?;
    let ldif = crate::provider::index::entries_to_ldif(&providers);
    Ok(super::download(
        "text/plain; charset=utf-8",
        "providers-index.ldif",
        ldif.into_bytes(),
    ))
}

// --- certificates ------------------------------------------------------------------

async fn certificates(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    ctx.admin()?;
    let config = &panel.provider.config;
    let paths = certs::paths(config);
    let ca_key = paths.ca_key.exists();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let rows = [
        (
            None,
            ctx.t(
                "Autorità di certificazione del box",
                "The box's certification authority",
            ),
            read(&paths.ca_cert),
            &paths.ca_cert,
        ),
        (
            Some("signing"),
            ctx.t(
                "Firma S/MIME dei messaggi PEC",
                "S/MIME signing of PEC messages",
            ),
            read(&paths.signing_cert),
            &paths.signing_cert,
        ),
        (
            Some("tls"),
            ctx.t(
                "TLS (SMTP, IMAP, POP3, pannello)",
                "TLS (SMTP, IMAP, POP3, panel)",
            ),
            read(&paths.tls_cert),
            &paths.tls_cert,
        ),
    ];
    let now = unix_now();
    let body = html! {
        (ui::heading(ctx.t("Certificati", "Certificates"), None, html! {
            a.btn href="/ca.pem" { (ctx.t("Scarica il certificato CA", "Download the CA certificate")) }
        }))
        div.note { (ctx.t(
            "Le modifiche ai certificati hanno effetto al prossimo riavvio di pecbox. Dopo il rinnovo del certificato di firma, consegna di nuovo la voce dell'indice agli altri gestori.",
            "Certificate changes take effect at the next start of pecbox. After renewing the signing certificate, give your index entry to the other providers again."
        )) }
        div.grid {
            @for (role, title, pem, path) in &rows {
                @let info = certs::info(pem);
                div.card {
                    h2 { (title) }
                    @match &info {
                        Some(i) => {
                            table.kv {
                                tr { th { (ctx.t("Soggetto", "Subject")) } td { (i.subject.replace(',', ", ")) } }
                                tr { th { (ctx.t("Emittente", "Issuer")) } td { (i.issuer.replace(',', ", ")) } }
                                tr { th { (ctx.t("Valido dal", "Valid from")) } td { (ui::time(i.not_before)) } }
                                tr { th { (ctx.t("Valido fino al", "Valid until")) } td {
                                    (ui::time(i.not_after)) " "
                                    @if i.not_after < now { span.badge.err { (ctx.t("scaduto", "expired")) } }
                                    @else if i.not_after < now + 30 * 86400 { span.badge.warn { (ctx.t("in scadenza", "expiring")) } }
                                    @else { span.badge.ok { (ctx.t("valido", "valid")) } }
                                } }
                                tr { th { (ctx.t("Numero di serie", "Serial number")) } td.mono.break.small { (i.serial) } }
                                tr { th { "SHA-1" } td.mono.break.small { (i.sha1) } }
                                tr { th { (ctx.t("File", "File")) } td.mono.break.small { (path.display()) } }
                            }
                        }
                        None => p.muted { (ctx.t("Certificato non leggibile.", "Certificate not readable.")) },
                    }
                    @if let Some(role) = role {
                        @if ca_key && certs::self_made(config, pem) {
                            form method="post" action="/admin/certs/renew" {
                                (csrf(&ctx))
                                input type="hidden" name="role" value=(role);
                                button.btn.small type="submit" { (ctx.t("Rinnova (autoemesso)", "Renew (self-made)")) }
                            }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { (ctx.t("Installa un certificato emesso da una CA", "Install a certificate issued by a CA")) }
            form method="post" action="/admin/certs/upload" enctype="multipart/form-data" {
                (csrf(&ctx))
                div.row3 {
                    label { span { (ctx.t("Uso", "Role")) }
                        select name="role" {
                            option value="signing" { (ctx.t("Firma S/MIME", "S/MIME signing")) }
                            option value="tls" { "TLS" }
                        } }
                    label { span { (ctx.t("Certificato (PEM, con la catena)", "Certificate (PEM, with chain)")) } input type="file" name="cert" required; }
                    label { span { (ctx.t("Chiave privata (PEM)", "Private key (PEM)")) } input type="file" name="key" required; }
                }
                button.btn.primary type="submit" { (ctx.t("Installa", "Install")) }
            }
        }
    };
    Ok(ui::page(
        &panel,
        &ctx,
        ctx.t("Certificati", "Certificates"),
        Nav::Admin("certs"),
        body,
    ))
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
}

async fn cert_renew(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<RoleForm>,
) -> PanelResult {
    ctx.admin()?;
    let role =
        CertRole::parse(&form.role).ok_or_else(|| PanelError::BadRequest("unknown role".into()))?;
    let config = panel.provider.config.clone();
    let r = tokio::task::spawn_blocking(move || certs::renew(&config, role))
        .await
        .map_err(|e| PanelError::Internal(e.to_string()))?;
    let flash = match r {
        Ok(()) => Flash::ok(ctx.t(
            "Certificato rinnovato: sarà usato dal prossimo riavvio di pecbox.",
            "Certificate renewed: it is used from the next start of pecbox.",
        )),
        Err(e) => Flash::error(e.to_string()),
    };
    back(&panel, &ctx, "/admin/certs", flash)
}

async fn cert_upload(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    multipart: Multipart,
) -> PanelResult {
    ctx.admin()?;
    let form = upload::read(&ctx, multipart, CERT_LIMIT).await?;
    let role = CertRole::parse(form.field("role"))
        .ok_or_else(|| PanelError::BadRequest("unknown role".into()))?;
    let text = |field: &str| {
        form.file(field)
            .and_then(|f| String::from_utf8(f.bytes.clone()).ok())
            .unwrap_or_default()
    };
    let (cert, key) = (text("cert"), text("key"));
    let flash = match certs::install(&panel.provider.config, role, &cert, &key) {
        Ok(()) => Flash::ok(ctx.t(
            "Certificato installato: sarà usato dal prossimo riavvio di pecbox.",
            "Certificate installed: it is used from the next start of pecbox.",
        )),
        Err(e) => Flash::error(e.to_string()),
    };
    back(&panel, &ctx, "/admin/certs", flash)
}

// --- outbound queue ----------------------------------------------------------------

async fn queue(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    ctx.admin()?;
    let entries = panel.provider.store.queue()?;
    let body = html! {
        (ui::heading(ctx.t("Coda in uscita", "Outbound queue"), Some(ctx.t(
            "Buste, ricevute e inoltri in attesa di consegna ad altri gestori.",
            "Envelopes, receipts and forwards waiting to be delivered to other providers."
        )), ui::empty()))
        div.card.flush {
            @if entries.is_empty() {
                div.empty { (ctx.t("La coda è vuota: tutto è stato consegnato.", "The queue is empty: everything was delivered.")) }
            } @else {
                div.table-wrap { table {
                    thead { tr {
                        th { (ctx.t("Messaggio", "Message")) }
                        th { (ctx.t("Destinatari", "Recipients")) }
                        th { (ctx.t("Tentativi", "Attempts")) }
                        th { (ctx.t("Prossimo", "Next")) }
                        th {}
                    } }
                    tbody {
                        @for e in &entries {
                            tr {
                                td { strong { "#" (e.id) } " " span.small { (e.label) } br;
                                    span.muted.small { (ctx.t("da", "from")) " " (e.mail_from) " · " (ctx.t("creato", "created")) " " (ui::time(e.created)) } }
                                td.small {
                                    @for r in &e.recipients {
                                        div {
                                            (r.address) " "
                                            @match r.state {
                                                RecipientState::Pending => span.badge.pending { (ctx.t("in attesa", "pending")) },
                                                RecipientState::Delivered => span.badge.ok { (ctx.t("consegnato", "delivered")) },
                                                RecipientState::Failed => span.badge.err { (ctx.t("fallito", "failed")) },
                                            }
                                            @if let Some(reply) = &r.last_reply { br; span.muted { (reply) } }
                                        }
                                    }
                                }
                                td { (e.attempts) }
                                td.nowrap { (ui::time(e.next_attempt)) }
                                td { div.btn-row {
                                    form method="post" action="/admin/queue/retry" {
                                        (csrf(&ctx)) input type="hidden" name="id" value=(e.id);
                                        button.btn.small type="submit" { (ctx.t("Riprova ora", "Retry now")) }
                                    }
                                    form method="post" action="/admin/queue/giveup" {
                                        (csrf(&ctx)) input type="hidden" name="id" value=(e.id);
                                        button.btn.small.danger type="submit" { (ctx.t("Rinuncia", "Give up")) }
                                    }
                                } }
                            }
                        }
                    }
                } }
            }
        }
        p.muted.small { (ctx.t(
            "«Rinuncia» chiude la consegna dei destinatari ancora in attesa: per una busta il mittente riceve l'avviso di mancata consegna.",
            "\"Give up\" ends delivery to the recipients still pending: for an envelope the sender gets the non-delivery notice."
        )) }
    };
    Ok(ui::page(
        &panel,
        &ctx,
        ctx.t("Coda", "Queue"),
        Nav::Admin("queue"),
        body,
    ))
}

#[derive(Deserialize)]
struct IdForm {
    id: u64,
}

async fn queue_retry(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<IdForm>,
) -> PanelResult {
    ctx.admin()?;
    let store = &panel.provider.store;
    let mut entry = store.queue_entry(form.id)?.ok_or(PanelError::NotFound)?;
    entry.next_attempt = unix_now();
    store.update_queue(&entry)?;
    store.flush()?;
    panel.provider.queue_wakeup.notify_one();
    back(
        &panel,
        &ctx,
        "/admin/queue",
        Flash::ok(format!(
            "#{} {}",
            form.id,
            ctx.t("sarà ritentato subito.", "will be retried now.")
        )),
    )
}

/// Ends delivery of a queue entry (provider::outbound::give_up does the work).
pub fn give_up(provider: &Provider, id: u64) -> Result<usize, PanelError> {
    crate::provider::outbound::give_up(provider, id)?.ok_or(PanelError::NotFound)
}

async fn queue_give_up(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<IdForm>,
) -> PanelResult {
    ctx.admin()?;
    let provider = panel.provider.clone();
    let n = tokio::task::spawn_blocking(move || give_up(&provider, form.id))
        .await
        .map_err(|e| PanelError::Internal(e.to_string()))??;
    back(
        &panel,
        &ctx,
        "/admin/queue",
        Flash::ok(format!(
            "#{}: {} {n} {}",
            form.id,
            ctx.t("consegna annullata per", "delivery ended for"),
            ctx.t("destinatari", "recipients")
        )),
    )
}

// --- log -----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct LogForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    id: String,
}

async fn log(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Query(form): Query<LogForm>,
) -> PanelResult {
    ctx.admin()?;
    // The registro reads files (and may wait for the records being settled): off the
    // async workers.
    let provider = panel.provider.clone();
    let (text, id) = (form.q.trim().to_string(), form.id.trim().to_string());
    let (results, timeline) = tokio::task::spawn_blocking(move || {
        let results = (!text.is_empty()).then(|| {
            log_view::search(
                &provider,
                &LogQuery {
                    text,
                    limit: 200,
                    ..Default::default()
                },
            )
        });
        let timeline = (!id.is_empty()).then(|| log_view::timeline(&provider, &id));
        (results, timeline)
    })
    .await
    .unwrap_or((None, None));
    let rows = |rows: &Vec<log_view::LogRow>| {
        html! {
            div.table-wrap { table {
                thead { tr { th { (ctx.t("Quando", "When")) } th { (ctx.t("Evento", "Event")) } th { (ctx.t("Dettagli", "Details")) } } }
                tbody { @for r in rows { tr {
                    td.nowrap { (ui::time(r.time)) }
                    td { (r.event) }
                    td.small { (r.summary)
                        @if let Some(id) = &r.identificativo { br; a href=(format!("/admin/log?id={}", ui::percent_encode(id))) { (ctx.t("cronologia", "timeline")) } } }
                } } }
            } }
        }
    };
    let unavailable = html! {
        div.placeholder {
            strong { (ctx.t("Registro dei log non ancora collegato al pannello.", "The log is not connected to the panel yet.")) }
            p { (ctx.t(
                "La ricerca nel registro dei log e la cronologia di un messaggio saranno mostrate qui.",
                "Log search and a message's timeline will be shown here."
            )) }
        }
    };
    let body = html! {
        (ui::heading(ctx.t("Registro dei log", "Log"), None, ui::empty()))
        div.grid.two {
            div.card {
                h2 { (ctx.t("Cerca", "Search")) }
                form method="get" action="/admin/log" {
                    label { span { (ctx.t("Indirizzo, identificativo, Message-ID…", "Address, identifier, Message-ID…")) } input type="search" name="q" value=(form.q); }
                    button.btn.primary type="submit" { (ctx.t("Cerca", "Search")) }
                }
            }
            div.card {
                h2 { (ctx.t("Cronologia di un messaggio", "A message's timeline")) }
                form method="get" action="/admin/log" {
                    label { span { (ctx.t("Identificativo PEC", "PEC identifier")) } input type="search" name="id" value=(form.id); }
                    button.btn type="submit" { (ctx.t("Mostra", "Show")) }
                }
            }
        }
        div.card.log-results {
            @match (&results, &timeline) {
                (Some(Some(r)), _) => { h2 { (ctx.t("Risultati", "Results")) } (rows(r)) }
                (_, Some(Some(r))) => { h2 { (ctx.t("Cronologia", "Timeline")) } (rows(r)) }
                (Some(None), _) | (_, Some(None)) => (unavailable),
                (None, None) => {
                    (unavailable)
                }
            }
        }
    };
    Ok(ui::page(
        &panel,
        &ctx,
        ctx.t("Registro", "Log"),
        Nav::Admin("log"),
        body,
    ))
}

// --- settings ------------------------------------------------------------------------

fn settings_form(panel: &Panel, ctx: &Ctx, s: &Settings, saved: &SavedState) -> Response {
    let config = &panel.provider.config;
    let factory = &config.layers.factory_origin;
    let target = crate::config::display_path(&config.override_path());
    let body = html! {
        (ui::heading(ctx.t("Impostazioni", "Settings"), Some(&format!("{} {}", ctx.t("Salvate in", "Saved to"), target.display())), ui::empty()))
        @if let Some(e) = &saved.error {
            div.flash.error { (e) }
        }
        div.note {
            (ctx.t(
                "Le modifiche sono salvate nella cartella dati (i commenti restano) e restano dopo un aggiornamento del sistema; hanno effetto al prossimo riavvio. Il file di configurazione di fabbrica non viene modificato:",
                "Changes are saved in the data folder (comments are kept) and survive a system update; they take effect at the next start. The factory configuration file is never modified:"
            )) " " code { (factory) } ". "
            (ctx.t("Cambiando nome o domini, rinnova i certificati autoemessi.", "After changing the name or domains, renew the self-made certificates."))
        }
        @if saved.pending {
            p.note { (ctx.t(
                "Il modulo mostra le impostazioni salvate: pecbox le userà dal prossimo riavvio.",
                "The form shows the saved settings: pecbox uses them from its next start."
            )) }
        }
        form method="post" action="/admin/settings" {
            (csrf(ctx))
            div.grid.two {
                div.card {
                    h2 { (ctx.t("Gestore", "Provider")) }
                    label { span { (ctx.t("Nome del gestore", "Provider name")) } input type="text" name="name" value=(s.name) required; }
                    label { span { (ctx.t("Domini PEC", "PEC domains")) } input type="text" name="domains" value=(s.domains.join(", ")) required;
                        small.hint { (ctx.t("separati da virgola", "comma-separated")) } }
                    label { span { "Hostname" } input type="text" name="hostname" value=(s.hostname) required; }
                }
                div.card {
                    h2 { (ctx.t("Consegna", "Delivery")) }
                    label { span { (ctx.t("Server di inoltro (smarthost)", "Relay (smarthost)")) } input type="text" name="smarthost" value=(s.smarthost.clone().unwrap_or_default()) placeholder="relay.example.org:25";
                        small.hint { (ctx.t("per posta ordinaria, notifiche e rapporti", "for ordinary mail, notices and reports")) } }
                    div.row2 {
                        label { span { (ctx.t("Dimensione massima", "Largest message")) } input type="text" name="max_message" value=(s.max_message_bytes); }
                        label { span { (ctx.t("Destinatari massimi", "Most recipients")) } input type="number" name="max_recipients" min="1" value=(s.max_recipients); }
                    }
                    label { span { (ctx.t("Conservazione dei log (mesi)", "Log retention (months)")) } input type="number" name="retention" min="30" value=(s.retention_months); }
                }
            }
            div.card {
                h2 { (ctx.t("Servizi in ascolto", "Listeners")) }
                div.row3 {
                    @for (key, addr) in &s.listen {
                        label { span { (listener_label(ctx, key)) } input type="text" name=(format!("listen_{key}")) value=(addr.clone().unwrap_or_default()) placeholder=(ctx.t("vuoto: disattivato", "empty: disabled")); }
                    }
                }
            }
            div.form-actions { button.btn.primary type="submit" { (ctx.t("Salva impostazioni", "Save settings")) } }
        }
        div.card {
            h2 { (ctx.t("Password dell'amministratore", "Administrator password")) }
            form method="post" action="/admin/password" {
                (csrf(ctx))
                div.row3 {
                    label { span { (ctx.t("Password attuale", "Current password")) } input type="password" name="current" autocomplete="current-password" required; }
                    label { span { (ctx.t("Nuova password", "New password")) } input type="password" name="new" autocomplete="new-password" minlength="10" required; }
                    label { span { (ctx.t("Ripeti", "Repeat")) } input type="password" name="repeat" autocomplete="new-password" minlength="10" required; }
                }
                button.btn type="submit" { (ctx.t("Cambia password", "Change password")) }
            }
        }
    };
    ui::page(
        panel,
        ctx,
        ctx.t("Impostazioni", "Settings"),
        Nav::Admin("settings"),
        body,
    )
}

/// The settings as saved (what the next start uses), which may differ from the running
/// ones until then.
struct SavedState {
    pending: bool,
    error: Option<String>,
}

async fn settings(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    ctx.admin()?;
    let running = &panel.provider.config;
    let (s, state) = match configfile::saved(running) {
        Ok(saved) => {
            let s = Settings::of(&saved);
            let pending = s != Settings::of(running);
            (
                s,
                SavedState {
                    pending,
                    error: None,
                },
            )
        }
        Err(e) => (
            Settings::of(running),
            SavedState {
                pending: false,
                error: Some(e.to_string()),
            },
        ),
    };
    Ok(settings_form(&panel, &ctx, &s, &state))
}

/// Settings from a submitted form; Err names the first bad field.
fn settings_from(pairs: &[(String, String)]) -> Result<Settings, String> {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let domains: Vec<String> = get("domains")
        .split([',', ' ', ';'])
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    if domains.is_empty() || !domains.iter().all(|d| configfile::check_domain(d)) {
        return Err("domains".into());
    }
    let name = get("name");
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err("name".into());
    }
    let hostname = get("hostname").to_ascii_lowercase();
    if !configfile::check_domain(&hostname) {
        return Err("hostname".into());
    }
    let smarthost = Some(get("smarthost")).filter(|s| !s.is_empty());
    if smarthost
        .as_deref()
        .is_some_and(|s| !configfile::check_host_port(s))
    {
        return Err("smarthost".into());
    }
    let max_message_bytes =
        parse_size(&get("max_message")).map_err(|_| "max_message".to_string())?;
    let max_recipients: usize = get("max_recipients")
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or("max_recipients")?;
    let retention_months: u32 = get("retention")
        .parse()
        .ok()
        .filter(|n| *n >= 30)
        .ok_or("retention")?;
    let mut listen: [(&'static str, Option<String>); 6] = configfile::LISTENERS.map(|k| (k, None));
    for (key, addr) in listen.iter_mut() {
        let v = get(&format!("listen_{key}"));
        if !v.is_empty() && !configfile::check_listen(&v) {
            return Err(format!("listen {key}"));
        }
        *addr = Some(v).filter(|v| !v.is_empty());
    }
    Ok(Settings {
        name,
        domains,
        hostname,
        listen,
        smarthost,
        max_message_bytes,
        max_recipients,
        retention_months,
    })
}

async fn settings_save(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> PanelResult {
    ctx.admin()?;
    let pairs = super::session::url_pairs(&body);
    let s = match settings_from(&pairs) {
        Ok(s) => s,
        Err(field) => {
            panel.sessions.flash(
                &ctx,
                Flash::error(format!(
                    "{}: {field}",
                    ctx.t("Valore non valido", "Invalid value")
                )),
            );
            return Ok(Redirect::to("/admin/settings").into_response());
        }
    };
    let saved = configfile::save(&panel.provider.config, &s);
    let flash = match saved {
        Ok(Saved::Written { path, .. }) => Flash::ok(format!(
            "{} {} — {}",
            ctx.t("Impostazioni salvate in", "Settings saved to"),
            path.display(),
            ctx.t(
                "riavvia pecbox per applicarle.",
                "restart pecbox to apply them."
            )
        )),
        Ok(Saved::Unchanged { .. }) => {
            Flash::ok(ctx.t("Nessuna modifica da salvare.", "Nothing to change."))
        }
        Err(e) => Flash::error(e.to_string()),
    };
    back(&panel, &ctx, "/admin/settings", flash)
}

#[derive(Deserialize)]
struct AdminPasswordForm {
    current: String,
    new: String,
    repeat: String,
}

async fn admin_password(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<AdminPasswordForm>,
) -> PanelResult {
    ctx.admin()?;
    let user = super::session::ADMIN_USER;
    if panel.lockout.locked(ctx.ip, user) {
        return Err(PanelError::Locked);
    }
    if form.new != form.repeat || form.new.chars().count() < 10 {
        return back(
            &panel,
            &ctx,
            "/admin/settings",
            Flash::error(ctx.t(
                "La nuova password deve avere almeno 10 caratteri e coincidere con la ripetizione.",
                "The new password needs at least 10 characters and must match its repetition.",
            )),
        );
    }
    let config = panel.provider.config.clone();
    let ok = tokio::task::spawn_blocking(move || {
        let current = super::files::admin_hash(&config);
        if !current.is_some_and(|h| crate::provider::auth::verify_password(&form.current, &h)) {
            return Ok(false);
        }
        let hash = crate::provider::auth::hash_password(&form.new).map_err(PanelError::Internal)?;
        super::files::set_admin_hash(&config, &hash)?;
        Ok::<_, PanelError>(true)
    })
    .await
    .map_err(|e| PanelError::Internal(e.to_string()))??;
    if !ok {
        panel.lockout.failed(ctx.ip, user);
        return back(
            &panel,
            &ctx,
            "/admin/settings",
            Flash::error(ctx.t(
                "La password attuale non è corretta.",
                "The current password is wrong.",
            )),
        );
    }
    back(
        &panel,
        &ctx,
        "/admin/settings",
        Flash::ok(ctx.t(
            "Password dell'amministratore cambiata.",
            "Administrator password changed.",
        )),
    )
}

// --- update ------------------------------------------------------------------------

async fn update(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    ctx.admin()?;
    let body = html! {
        (ui::heading(ctx.t("Aggiornamento del software", "Software update"), Some(&format!("pecbox {}", env!("CARGO_PKG_VERSION"))), ui::empty()))
        div.card {
            div.placeholder {
                strong { (ctx.t("Aggiornamenti firmati: in arrivo.", "Signed updates: coming.")) }
                p { (ctx.t(
                    "Il caricamento di un pacchetto di aggiornamento sarà disponibile con la funzione di aggiornamento firmato: il pacchetto verrà verificato prima dell'installazione.",
                    "Uploading an update package arrives with the signed-update feature: the package will be verified before it is installed."
                )) }
                form {
                    label { span { (ctx.t("Pacchetto di aggiornamento", "Update package")) } input type="file" disabled; }
                    button.btn type="button" disabled { (ctx.t("Carica", "Upload")) }
                }
            }
        }
    };
    Ok(ui::page(
        &panel,
        &ctx,
        ctx.t("Aggiornamenti", "Updates"),
        Nav::Admin("update"),
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::access::Submission;
    use crate::registro::{EventKind, Query};
    use crate::store::INBOX;

    #[test]
    fn giving_up_a_busta_tells_the_sender() {
        let (_dir, provider) = super::super::test_provider("");
        let message = b"From: alice@pec.alfa.test\r\nTo: x@pec.altrove.test\r\nSubject: Prova\r\n\r\nTesto\r\n";
        let rcpt = vec!["x@pec.altrove.test".to_string()];
        let outcome = provider
            .submit(
                "alice@pec.alfa.test",
                "alice@pec.alfa.test",
                &rcpt,
                message.to_vec(),
            )
            .unwrap();
        let Submission::Accepted { identificativo } = outcome else {
            panic!("{outcome:?}")
        };
        let queue = provider.store.queue().unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(give_up(&provider, queue[0].id).unwrap(), 1);
        assert!(provider.store.queue().unwrap().is_empty());
        let tx = provider
            .store
            .transaction(&identificativo)
            .unwrap()
            .unwrap();
        assert!(tx.recipients[0].failed.is_some());
        let kinds: Vec<&str> = provider
            .store
            .list("alice@pec.alfa.test", INBOX)
            .unwrap()
            .iter()
            .map(|m| {
                let raw = provider
                    .store
                    .fetch("alice@pec.alfa.test", INBOX, m.uid)
                    .unwrap()
                    .unwrap();
                crate::pec::classify::classify(&raw)
                    .kind()
                    .map_or("other", |k| k.code())
            })
            .collect();
        assert_eq!(kinds, ["accettazione", "mancata-consegna"]);
        // The registro has the step and keeps the notice the sender got.
        let timeline = provider.registro.timeline(&identificativo).unwrap();
        let given_up = timeline
            .iter()
            .find(|r| r.event.kind == Some(EventKind::Inoltro))
            .expect("the give-up is logged");
        assert!(given_up.event.outcome.starts_with("given up"));
        let notice = provider
            .registro
            .search(&Query {
                identificativo: Some(identificativo.clone()),
                kind: Some(EventKind::MancataConsegnaEmessa),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(notice.len(), 1);
        let kept = provider
            .registro
            .receipt(notice[0].event.message_id.as_deref().unwrap())
            .unwrap()
            .expect("the notice is kept");
        assert_eq!(
            crate::pec::classify::classify(&kept)
                .kind()
                .map(|k| k.code()),
            Some("mancata-consegna")
        );
        assert!(matches!(
            give_up(&provider, queue[0].id),
            Err(PanelError::NotFound)
        ));
    }
}
