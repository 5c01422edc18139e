//! GestioneMail: the holder's own settings (password, reference address, notices of new
//! PEC, daily report, ordinary mail, quota, access log) and the password reset through
//! the reference address with a signed, expiring link.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use maud::html;
use serde::Deserialize;

use super::prefs::{self, MAX_NOTIFY};
use super::session::Ctx;
use super::ui::{self, csrf, Flash, Nav};
use super::{files, log_view, notify, Panel, PanelError, PanelResult};
use crate::provider::admin::{self, AdminRequest};
use crate::provider::auth::verify_password;
use crate::store::OrdinaryMailPolicy;

/// How long a password-reset link works.
const RESET_VALIDITY_SECS: i64 = 3600;

pub fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/account", get(overview))
        .route("/account/password", post(change_password))
        .route("/account/reference", post(set_reference))
        .route("/account/notifications", post(set_notifications))
        .route("/account/report", post(set_report))
        .route("/account/ordinary", post(set_ordinary))
        .route("/account/access", get(access_log))
        .route("/reset", get(reset_page).post(reset_request))
        .route(
            "/reset/confirm",
            get(reset_confirm_page).post(reset_confirm),
        )
}

async fn overview(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let store = &panel.provider.store;
    let mailbox = store.mailbox(&address)?.ok_or(PanelError::NotFound)?;
    let used = store.usage(&address)?;
    let p = prefs::load(&panel.provider.config, &address);
    let smarthost = panel.provider.config.delivery.smarthost.is_some();
    let (policy, forward_to) = match &mailbox.ordinary_mail {
        OrdinaryMailPolicy::Refuse => ("refuse", String::new()),
        OrdinaryMailPolicy::Anomalia => ("anomalia", String::new()),
        OrdinaryMailPolicy::Forward(to) => ("forward", to.clone()),
    };
    let slot = |v: &Vec<String>, i: usize| v.get(i).cloned().unwrap_or_default();
    let body = html! {
        (ui::heading("GestioneMail", Some(&address), ui::empty()))
        @if !smarthost {
            div.note { (ctx.t(
                "Il gestore non ha configurato un server di inoltro (smarthost): notifiche, rapporti e reimpostazione della password via e-mail non possono essere spediti.",
                "The provider has not configured a relay (smarthost): notices, reports and password-reset e-mails cannot be sent."
            )) }
        }
        div.grid.two {
            div.card {
                h2 { (ctx.t("Spazio occupato", "Storage used")) }
                div.quota {
                    @match mailbox.quota {
                        Some(q) => {
                            meter min="0" max=(q) value=(used.min(q)) low=(q * 7 / 10) high=(q * 9 / 10) optimum="0" {}
                            span { (ui::size(used)) " " (ctx.t("di", "of")) " " (ui::size(q)) " (" (used * 100 / q.max(1)) "%)" }
                        }
                        None => span { (ui::size(used)) " — " (ctx.t("nessun limite", "no limit")) },
                    }
                }
                h2.spaced { (ctx.t("Cambia password", "Change password")) }
                form method="post" action="/account/password" {
                    (csrf(&ctx))
                    label { span { (ctx.t("Password attuale", "Current password")) } input type="password" name="current" autocomplete="current-password" required; }
                    div.row2 {
                        label { span { (ctx.t("Nuova password", "New password")) } input type="password" name="new" autocomplete="new-password" minlength="8" required; }
                        label { span { (ctx.t("Ripeti", "Repeat")) } input type="password" name="repeat" autocomplete="new-password" minlength="8" required; }
                    }
                    button.btn.primary type="submit" { (ctx.t("Cambia password", "Change password")) }
                }
            }
            div.card {
                h2 { (ctx.t("Indirizzo di riferimento", "Reference address")) }
                p.muted.small { (ctx.t(
                    "Un indirizzo e-mail ordinario: serve a reimpostare la password e riceve il rapporto giornaliero.",
                    "An ordinary e-mail address: used to reset your password and to receive the daily report."
                )) }
                form method="post" action="/account/reference" {
                    (csrf(&ctx))
                    label { span { (ctx.t("Indirizzo e-mail", "E-mail address")) } input type="email" name="reference" value=(p.reference.clone().unwrap_or_default()); }
                    button.btn type="submit" { (ctx.t("Salva", "Save")) }
                }
                h2.spaced { (ctx.t("Rapporto giornaliero", "Daily report")) }
                form method="post" action="/account/report" {
                    (csrf(&ctx))
                    label.check { input type="checkbox" name="enabled" value="1" checked[p.report_time.is_some()]; span { (ctx.t("Invia ogni giorno l'elenco dei messaggi non letti", "Send the list of unread messages every day")) } }
                    label { span { (ctx.t("Ora di invio", "Time")) } input type="time" name="time" value=(p.report_time.clone().unwrap_or_else(|| "08:00".into())); }
                    button.btn type="submit" { (ctx.t("Salva", "Save")) }
                }
            }
            div.card {
                h2 { (ctx.t("Notifica dei nuovi messaggi PEC", "Notice of new PEC messages")) }
                p.muted.small { (ctx.t(
                    "Fino a due indirizzi ordinari ricevono un avviso per ogni nuovo messaggio PEC; facoltativamente solo per i messaggi di due mittenti.",
                    "Up to two ordinary addresses get a notice for each new PEC message; optionally only for messages from two senders."
                )) }
                form method="post" action="/account/notifications" {
                    (csrf(&ctx))
                    div.row2 {
                        label { span { (ctx.t("Avvisa", "Notify")) " 1" } input type="email" name="to1" value=(slot(&p.notify_to, 0)); }
                        label { span { (ctx.t("Avvisa", "Notify")) " 2" } input type="email" name="to2" value=(slot(&p.notify_to, 1)); }
                    }
                    div.row2 {
                        label { span { (ctx.t("Solo dal mittente", "Only from sender")) " 1" } input type="email" name="from1" value=(slot(&p.notify_from, 0)); }
                        label { span { (ctx.t("Solo dal mittente", "Only from sender")) " 2" } input type="email" name="from2" value=(slot(&p.notify_from, 1)); }
                    }
                    button.btn type="submit" { (ctx.t("Salva", "Save")) }
                }
            }
            div.card {
                h2 { (ctx.t("Posta ordinaria", "Ordinary mail")) }
                p.muted.small { (ctx.t(
                    "Cosa fare dei messaggi non certificati indirizzati a questa casella.",
                    "What to do with non-certified messages sent to this mailbox."
                )) }
                form method="post" action="/account/ordinary" {
                    (csrf(&ctx))
                    div.stack {
                        label.check { input type="radio" name="policy" value="refuse" checked[policy == "refuse"]; span { (ctx.t("Rifiuta", "Refuse")) } }
                        label.check { input type="radio" name="policy" value="anomalia" checked[policy == "anomalia"]; span { (ctx.t("Accetta (in una busta di anomalia)", "Accept (in an anomaly envelope)")) } }
                        label.check { input type="radio" name="policy" value="forward" checked[policy == "forward"]; span { (ctx.t("Inoltra a un indirizzo ordinario", "Forward to an ordinary address")) } }
                    }
                    label { span { (ctx.t("Inoltra a", "Forward to")) } input type="email" name="forward_to" value=(forward_to); }
                    button.btn type="submit" { (ctx.t("Salva", "Save")) }
                }
            }
        }
    };
    Ok(ui::page(
        &panel,
        &ctx,
        "GestioneMail",
        Nav::Holder("account".into()),
        body,
    ))
}

fn back(panel: &Panel, ctx: &Ctx, flash: Flash) -> PanelResult {
    panel.sessions.flash(ctx, flash);
    Ok(Redirect::to("/account").into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    current: String,
    new: String,
    repeat: String,
}

async fn change_password(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<PasswordForm>,
) -> PanelResult {
    let address = ctx.holder()?.to_string();
    if panel.lockout.locked(ctx.ip, &address) {
        return Err(PanelError::Locked);
    }
    if form.new != form.repeat {
        return back(
            &panel,
            &ctx,
            Flash::error(ctx.t(
                "Le due password non coincidono.",
                "The two passwords differ.",
            )),
        );
    }
    let p = panel.provider.clone();
    let (a, current, new) = (address.clone(), form.current.clone(), form.new.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let mailbox = p.store.mailbox(&a)?.ok_or(PanelError::NotFound)?;
        if !verify_password(&current, &mailbox.password_hash) {
            return Ok(None);
        }
        Ok::<_, PanelError>(Some(admin::execute(
            &p.store,
            &p.config,
            AdminRequest::MailboxPasswd {
                address: a,
                password: new,
            },
        )))
    })
    .await
    .map_err(|e| PanelError::Internal(e.to_string()))??;
    match outcome {
        None => {
            panel.lockout.failed(ctx.ip, &address);
            back(
                &panel,
                &ctx,
                Flash::error(ctx.t(
                    "La password attuale non è corretta.",
                    "The current password is wrong.",
                )),
            )
        }
        Some(r) if !r.ok => back(&panel, &ctx, Flash::error(r.text)),
        Some(_) => {
            tracing::info!(user = %address, peer = %ctx.ip, "password changed from the panel");
            panel.sessions.end_holder(&address, ctx.sid.as_deref());
            back(
                &panel,
                &ctx,
                Flash::ok(ctx.t("Password cambiata.", "Password changed.")),
            )
        }
    }
}

#[derive(Deserialize)]
struct ReferenceForm {
    reference: String,
}

async fn set_reference(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<ReferenceForm>,
) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let reference = if form.reference.trim().is_empty() {
        None
    } else {
        match prefs::check_address(&form.reference) {
            Some(a) if !panel.provider.is_local(&a) => Some(a),
            _ => {
                return back(
                    &panel,
                    &ctx,
                    Flash::error(ctx.t(
                        "Indica un indirizzo e-mail ordinario valido.",
                        "Give a valid ordinary e-mail address.",
                    )),
                )
            }
        }
    };
    prefs::update(&panel.provider.config, &address, |p| {
        p.reference = reference
    })
    .map_err(|e| PanelError::Internal(e.to_string()))?;
    back(&panel, &ctx, Flash::ok(ctx.t("Salvato.", "Saved.")))
}

#[derive(Deserialize)]
struct NotifyForm {
    #[serde(default)]
    to1: String,
    #[serde(default)]
    to2: String,
    #[serde(default)]
    from1: String,
    #[serde(default)]
    from2: String,
}

fn addresses(values: [&str; MAX_NOTIFY]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for v in values {
        if v.trim().is_empty() {
            continue;
        }
        match prefs::check_address(v) {
            Some(a) if !out.contains(&a) => out.push(a),
            Some(_) => {}
            None => return Err(v.trim().to_string()),
        }
    }
    Ok(out)
}

async fn set_notifications(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<NotifyForm>,
) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let parsed = addresses([&form.to1, &form.to2])
        .and_then(|to| addresses([&form.from1, &form.from2]).map(|from| (to, from)));
    let (to, from) = match parsed {
        Ok(v) => v,
        Err(bad) => {
            return back(
                &panel,
                &ctx,
                Flash::error(format!(
                    "{}: {bad}",
                    ctx.t("Indirizzo non valido", "Invalid address")
                )),
            )
        }
    };
    let provider = panel.provider.clone();
    prefs::update(&panel.provider.config, &address, |p| {
        // Only messages arriving from now on are notified.
        if p.notify_to.is_empty() && !to.is_empty() {
            notify::mark_inbox_seen(&provider, p);
        }
        p.notify_to = to;
        p.notify_from = from;
    })
    .map_err(|e| PanelError::Internal(e.to_string()))?;
    back(
        &panel,
        &ctx,
        Flash::ok(ctx.t("Notifiche salvate.", "Notices saved.")),
    )
}

#[derive(Deserialize)]
struct ReportForm {
    enabled: Option<String>,
    #[serde(default)]
    time: String,
}

async fn set_report(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<ReportForm>,
) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let time = match (form.enabled.is_some(), prefs::check_time(&form.time)) {
        (false, _) => None,
        (true, Some(t)) => Some(t),
        (true, None) => {
            return back(
                &panel,
                &ctx,
                Flash::error(ctx.t("Ora non valida (HH:MM).", "Invalid time (HH:MM).")),
            )
        }
    };
    prefs::update(&panel.provider.config, &address, |p| {
        if p.report_time != time {
            p.last_report = None;
        }
        p.report_time = time;
    })
    .map_err(|e| PanelError::Internal(e.to_string()))?;
    back(&panel, &ctx, Flash::ok(ctx.t("Salvato.", "Saved.")))
}

#[derive(Deserialize)]
struct OrdinaryForm {
    policy: String,
    #[serde(default)]
    forward_to: String,
}

async fn set_ordinary(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<OrdinaryForm>,
) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let policy = match form.policy.as_str() {
        "refuse" => OrdinaryMailPolicy::Refuse,
        "anomalia" => OrdinaryMailPolicy::Anomalia,
        "forward" => match prefs::check_address(&form.forward_to) {
            Some(a) if !panel.provider.is_local(&a) => OrdinaryMailPolicy::Forward(a),
            _ => {
                return back(
                    &panel,
                    &ctx,
                    Flash::error(ctx.t(
                        "Indica un indirizzo ordinario valido per l'inoltro.",
                        "Give a valid ordinary address to forward to.",
                    )),
                )
            }
        },
        _ => return Err(PanelError::BadRequest("unknown policy".into())),
    };
    let r = admin::execute(
        &panel.provider.store,
        &panel.provider.config,
        AdminRequest::MailboxPolicy { address, policy },
    );
    if !r.ok {
        return back(&panel, &ctx, Flash::error(r.text));
    }
    back(&panel, &ctx, Flash::ok(ctx.t("Salvato.", "Saved.")))
}

async fn access_log(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    let address = ctx.holder()?.to_string();
    let (provider, holder) = (panel.provider.clone(), address.clone());
    let rows = tokio::task::spawn_blocking(move || log_view::access_log(&provider, &holder))
        .await
        .ok()
        .flatten();
    let body = html! {
        (ui::heading(ctx.t("Accessi alla casella", "Sign-ins to this mailbox"), Some(&address), ui::empty()))
        div.card.flush {
            @match rows {
                Some(rows) if !rows.is_empty() => {
                    div.table-wrap { table {
                        thead { tr { th { (ctx.t("Quando", "When")) } th { (ctx.t("Protocollo", "Protocol")) } th { "IP" } th { (ctx.t("Esito", "Outcome")) } } }
                        tbody {
                            @for r in &rows {
                                tr {
                                    td.nowrap { (ui::time(r.time)) }
                                    td { (r.protocol) }
                                    td.mono { (r.ip) }
                                    td { @if r.ok { span.badge.ok { (ctx.t("riuscito", "succeeded")) } } @else { span.badge.err { (ctx.t("fallito", "failed")) } } }
                                }
                            }
                        }
                    } }
                }
                Some(_) => div.empty { (ctx.t("Nessun accesso registrato.", "No sign-in recorded.")) },
                None => div.placeholder {
                    strong { (ctx.t("Registro degli accessi non ancora disponibile.", "Sign-in log not available yet.")) }
                    p { (ctx.t(
                        "Gli accessi per protocollo e indirizzo IP saranno mostrati qui dal registro dei log.",
                        "Sign-ins by protocol and IP address will be shown here from the provider's log."
                    )) }
                },
            }
        }
    };
    Ok(ui::page(
        &panel,
        &ctx,
        ctx.t("Accessi", "Sign-ins"),
        Nav::Holder("access".into()),
        body,
    ))
}

// --- password reset -------------------------------------------------------------

fn password_fingerprint(phc: &str) -> String {
    files::sha256_hex(phc.as_bytes())[..16].to_string()
}

/// `base64url(address \n expiry) . base64url(HMAC-SHA256)`; the MAC also covers the
/// current password hash, so the link dies as soon as the password changes.
pub fn reset_token(key: &ring::hmac::Key, address: &str, expiry: i64, phc: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = format!("{address}\n{expiry}");
    let mac = ring::hmac::sign(
        key,
        format!("{payload}\n{}", password_fingerprint(phc)).as_bytes(),
    );
    format!("{}.{}", b64.encode(payload), b64.encode(mac.as_ref()))
}

/// The mailbox a valid, unexpired token is for.
pub fn check_reset_token(
    key: &ring::hmac::Key,
    token: &str,
    now: i64,
    phc_of: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, mac) = token.split_once('.')?;
    let payload = String::from_utf8(b64.decode(payload).ok()?).ok()?;
    let mac = b64.decode(mac).ok()?;
    let (address, expiry) = payload.split_once('\n')?;
    let expiry: i64 = expiry.parse().ok()?;
    if expiry < now {
        return None;
    }
    let phc = phc_of(address)?;
    ring::hmac::verify(
        key,
        format!("{payload}\n{}", password_fingerprint(&phc)).as_bytes(),
        &mac,
    )
    .ok()?;
    Some(address.to_string())
}

async fn reset_page(State(panel): State<Arc<Panel>>, ctx: Ctx) -> Response {
    let body = html! {
        div.auth { div.auth-card {
            h1 { (ctx.t("Password dimenticata", "Forgot your password")) }
            p.muted { (ctx.t(
                "Indica la tua casella PEC: se ha un indirizzo di riferimento, riceverai lì un link valido un'ora per scegliere una nuova password.",
                "Enter your PEC mailbox: if it has a reference address, a link valid for one hour to choose a new password will be sent there."
            )) }
            form method="post" action="/reset" {
                (csrf(&ctx))
                label { span { (ctx.t("Casella PEC", "PEC mailbox")) } input type="email" name="address" required autofocus; }
                button.btn.primary.wide type="submit" { (ctx.t("Invia il link", "Send the link")) }
            }
            p.auth-foot { a href="/login" { (ctx.t("Torna all'accesso", "Back to sign-in")) } }
        } }
    };
    ui::page(
        &panel,
        &ctx,
        ctx.t("Password dimenticata", "Forgot password"),
        Nav::None,
        body,
    )
}

#[derive(Deserialize)]
struct ResetRequest {
    address: String,
}

async fn reset_request(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<ResetRequest>,
) -> PanelResult {
    let address = form.address.trim().to_ascii_lowercase();
    let key = format!("reset:{address}");
    if panel.lockout.locked(ctx.ip, &key) {
        return Err(PanelError::Locked);
    }
    // Counted like a failure: bounds the mails one can trigger.
    panel.lockout.failed(ctx.ip, &key);
    let provider = panel.provider.clone();
    let secret = panel.reset_key.clone();
    // The answer is the same whether or not the mailbox exists; the work goes on aside.
    tokio::spawn(async move {
        let Ok(Some(mailbox)) = provider.store.mailbox(&address) else {
            return;
        };
        if mailbox.disabled {
            return;
        }
        let Some(reference) = prefs::load(&provider.config, &address).reference else {
            return;
        };
        let expiry = chrono::Utc::now().timestamp() + RESET_VALIDITY_SECS;
        let token = reset_token(&secret, &address, expiry, &mailbox.password_hash);
        let link = format!(
            "{}/reset/confirm?t={}",
            notify::panel_base_url(&provider),
            token
        );
        let text = format!(
            "È stata chiesta la reimpostazione della password della casella PEC {address}.\n\n\
             Per scegliere una nuova password apri questo link entro un'ora:\n{link}\n\n\
             Se non l'hai chiesta tu, ignora questo messaggio.\n\n--\n{}\n",
            provider.config.provider.name
        );
        match notify::send_ordinary(
            &provider,
            &[reference],
            &format!("Reimpostazione della password di {address}"),
            &text,
        )
        .await
        {
            Ok(()) => tracing::info!(user = %address, "password reset link sent"),
            Err(e) => tracing::warn!(user = %address, "password reset link not sent: {e}"),
        }
    });
    panel.sessions.flash(
        &ctx,
        Flash::info(ctx.t(
            "Se la casella esiste e ha un indirizzo di riferimento, riceverai a breve un messaggio con il link.",
            "If the mailbox exists and has a reference address, a message with the link is on its way.",
        )),
    );
    Ok(Redirect::to("/login").into_response())
}

#[derive(Deserialize)]
struct TokenQuery {
    t: String,
}

fn token_owner(panel: &Panel, token: &str) -> Option<String> {
    check_reset_token(
        &panel.reset_key,
        token,
        chrono::Utc::now().timestamp(),
        |a| {
            panel
                .provider
                .store
                .mailbox(a)
                .ok()
                .flatten()
                .filter(|m| !m.disabled)
                .map(|m| m.password_hash)
        },
    )
}

async fn reset_confirm_page(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Query(q): Query<TokenQuery>,
) -> PanelResult {
    let address = token_owner(&panel, &q.t)
        .ok_or_else(|| PanelError::BadRequest("this link is not valid or has expired".into()))?;
    let body = html! {
        div.auth { div.auth-card {
            h1 { (ctx.t("Nuova password", "New password")) }
            p.muted { (address) }
            form method="post" action="/reset/confirm" {
                (csrf(&ctx))
                input type="hidden" name="t" value=(q.t);
                label { span { (ctx.t("Nuova password", "New password")) } input type="password" name="new" minlength="8" autocomplete="new-password" required; }
                label { span { (ctx.t("Ripeti", "Repeat")) } input type="password" name="repeat" minlength="8" autocomplete="new-password" required; }
                button.btn.primary.wide type="submit" { (ctx.t("Imposta la password", "Set the password")) }
            }
        } }
    };
    Ok(ui::page(
        &panel,
        &ctx,
        ctx.t("Nuova password", "New password"),
        Nav::None,
        body,
    ))
}

#[derive(Deserialize)]
struct ResetConfirm {
    t: String,
    new: String,
    repeat: String,
}

async fn reset_confirm(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<ResetConfirm>,
) -> PanelResult {
    let address = token_owner(&panel, &form.t)
        .ok_or_else(|| PanelError::BadRequest("this link is not valid or has expired".into()))?;
    if form.new != form.repeat {
        return Err(PanelError::BadRequest("the two passwords differ".into()));
    }
    let p = panel.provider.clone();
    let a = address.clone();
    let r = tokio::task::spawn_blocking(move || {
        admin::execute(
            &p.store,
            &p.config,
            AdminRequest::MailboxPasswd {
                address: a,
                password: form.new,
            },
        )
    })
    .await
    .map_err(|e| PanelError::Internal(e.to_string()))?;
    if !r.ok {
        return Err(PanelError::BadRequest(r.text));
    }
    tracing::info!(user = %address, peer = %ctx.ip, "password reset through the reference address");
    panel.sessions.end_holder(&address, None);
    panel.sessions.flash(
        &ctx,
        Flash::ok(ctx.t(
            "Password impostata: ora puoi accedere.",
            "Password set: you can sign in now.",
        )),
    );
    Ok((StatusCode::SEE_OTHER, [("location", "/login")]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_tokens_expire_and_die_with_the_password() {
        let key =
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"0123456789abcdef0123456789abcdef");
        let t = reset_token(&key, "a@pec.x.test", 1000, "$argon2id$old");
        let phc = |hash: &'static str| move |_: &str| Some(hash.to_string());
        assert_eq!(
            check_reset_token(&key, &t, 999, phc("$argon2id$old")).as_deref(),
            Some("a@pec.x.test")
        );
        assert!(
            check_reset_token(&key, &t, 1001, phc("$argon2id$old")).is_none(),
            "expired"
        );
        assert!(
            check_reset_token(&key, &t, 999, phc("$argon2id$new")).is_none(),
            "password changed"
        );
        let other =
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"another key of thirty-two bytes!");
        assert!(check_reset_token(&other, &t, 999, phc("$argon2id$old")).is_none());
        let forged = format!(
            "{}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("b@pec.x.test\n1000"),
            t.split_once('.').unwrap().1
        );
        assert!(check_reset_token(&key, &forged, 999, phc("$argon2id$old")).is_none());
        assert!(check_reset_token(&key, "garbage", 0, phc("x")).is_none());
    }
}
