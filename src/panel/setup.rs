//! The first-run setup wizard: setup code (proves access to the box's console or data
//! folder), provider name, PEC domains and hostname, admin password, first mailboxes;
//! then it writes the configuration (safely), creates the mailboxes and offers the CA
//! certificate and this provider's index entry. Setup is done once the admin password
//! exists (`data_dir/panel-admin`); until then every page leads here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::configfile::{self, Saved, Settings};
use super::session::{Ctx, Role};
use super::ui::{self, csrf, Flash, Nav};
use super::{files, Panel, PanelError, PanelResult};
use crate::store::{Mailbox, OrdinaryMailPolicy};

/// What the wizard collected so far (kept in the session).
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub step: u8,
    pub name: String,
    pub domains: Vec<String>,
    pub hostname: String,
    pub admin_hash: Option<String>,
    pub mailboxes: Vec<String>,
}

/// Mailboxes of domains the running daemon does not manage yet: created at next start.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    address: String,
    password_hash: String,
}

const STEPS: [(&str, &str); 5] = [
    ("Codice", "Code"),
    ("Gestore", "Provider"),
    ("Amministratore", "Administrator"),
    ("Caselle", "Mailboxes"),
    ("Conferma", "Confirm"),
];

pub fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/setup", get(wizard))
        .route("/setup/code", post(code))
        .route("/setup/provider", post(provider))
        .route("/setup/admin", post(admin))
        .route("/setup/mailboxes", post(mailboxes))
        .route("/setup/back", post(step_back))
        .route("/setup/finish", post(finish))
}

fn draft(panel: &Panel, ctx: &Ctx) -> Draft {
    ctx.sid
        .as_deref()
        .and_then(|id| panel.sessions.with(id, |s| s.wizard.clone()))
        .unwrap_or_default()
}

fn save_draft(panel: &Panel, ctx: &Ctx, change: impl FnOnce(&mut Draft)) {
    if let Some(id) = &ctx.sid {
        panel.sessions.with(id, |s| change(&mut s.wizard));
    }
}

fn progress(ctx: &Ctx, current: u8) -> Markup {
    html! {
        ol.progress {
            @for (i, (it, en)) in STEPS.iter().enumerate() {
                @let i = i as u8;
                li.done[i < current] .current[i == current] { (i + 1) ". " (ctx.lang.t(it, en)) }
            }
        }
    }
}

fn wizard_page(panel: &Panel, ctx: &Ctx, step: u8, content: Markup) -> Response {
    let body = html! {
        div.wizard {
            (ui::heading(ctx.t("Configurazione iniziale", "First-time setup"), Some(ctx.t(
                "Pochi passi per mettere in servizio il tuo gestore PEC.",
                "A few steps to put your PEC provider into service."
            )), ui::empty()))
            (progress(ctx, step))
            div.card { (content) }
        }
    };
    ui::page(
        panel,
        ctx,
        ctx.t("Configurazione iniziale", "Setup"),
        Nav::Setup,
        body,
    )
}

fn back_button(ctx: &Ctx) -> Markup {
    html! {
        form.inline method="post" action="/setup/back" {
            (csrf(ctx))
            button.btn type="submit" { "← " (ctx.t("Indietro", "Back")) }
        }
    }
}

async fn wizard(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    if panel.setup_done() {
        return Ok(Redirect::to("/login").into_response());
    }
    if ctx.role != Role::Setup {
        let content = html! {
            h2 { (ctx.t("Codice di configurazione", "Setup code")) }
            p { (ctx.t(
                "Per sicurezza, inserisci il codice di configurazione mostrato da pecbox all'avvio (si trova anche nel file panel/setup-code della cartella dati).",
                "For safety, enter the setup code pecbox printed when it started (it is also in the file panel/setup-code of the data folder)."
            )) }
            form method="post" action="/setup/code" {
                (csrf(&ctx))
                label { span { (ctx.t("Codice", "Code")) } input.code type="text" name="code" required autofocus autocomplete="off" autocapitalize="characters" placeholder="XXXX-XXXX"; }
                button.btn.primary type="submit" { (ctx.t("Inizia", "Start")) }
            }
        };
        return Ok(wizard_page(&panel, &ctx, 0, content));
    }
    let d = draft(&panel, &ctx);
    let content = match d.step {
        0 | 1 => html! {
            h2 { (ctx.t("Il gestore", "The provider")) }
            form method="post" action="/setup/provider" {
                (csrf(&ctx))
                label { span { (ctx.t("Nome del gestore", "Provider name")) }
                    input type="text" name="name" value=(d.name) required;
                    small.hint { (ctx.t("Compare nelle ricevute e nell'indice dei gestori, es. «Studio Rossi PEC».", "Appears in receipts and in the providers' index, e.g. \"Studio Rossi PEC\".")) } }
                label { span { (ctx.t("Domini PEC", "PEC domains")) }
                    input type="text" name="domains" value=(d.domains.join(", ")) required;
                    small.hint { (ctx.t("Separati da virgola, es. pec.studiorossi.it", "Comma-separated, e.g. pec.studiorossi.it")) } }
                label { span { (ctx.t("Nome host del server", "Server host name")) }
                    input type="text" name="hostname" value=(d.hostname) required;
                    small.hint { (ctx.t("Il nome con cui gli altri gestori raggiungono questo box, es. mx.pec.studiorossi.it", "The name other providers reach this box by, e.g. mx.pec.studiorossi.it")) } }
                div.form-actions { button.btn.primary type="submit" { (ctx.t("Avanti", "Next")) " →" } }
            }
        },
        2 => html! {
            h2 { (ctx.t("Password dell'amministratore", "Administrator password")) }
            p.muted { (ctx.t("L'amministratore accede al pannello con il nome «admin».", "The administrator signs in to the panel as \"admin\".")) }
            form method="post" action="/setup/admin" {
                (csrf(&ctx))
                div.row2 {
                    label { span { "Password" } input type="password" name="password" minlength="10" autocomplete="new-password" required; }
                    label { span { (ctx.t("Ripeti", "Repeat")) } input type="password" name="repeat" minlength="10" autocomplete="new-password" required; }
                }
                small.hint { (ctx.t("Almeno 10 caratteri.", "At least 10 characters.")) }
                div.form-actions { (back_button(&ctx)) button.btn.primary type="submit" { (ctx.t("Avanti", "Next")) " →" } }
            }
        },
        3 => html! {
            h2 { (ctx.t("Le prime caselle", "The first mailboxes")) }
            p.muted { (ctx.t(
                "Una casella per riga (nome o indirizzo completo). Le password vengono generate e mostrate alla fine. Potrai aggiungerne altre in seguito.",
                "One mailbox per line (name or full address). Passwords are generated and shown at the end. You can add more later."
            )) }
            form method="post" action="/setup/mailboxes" {
                (csrf(&ctx))
                label { span { (ctx.t("Caselle", "Mailboxes")) " (@" (d.domains.first().cloned().unwrap_or_default()) ")" }
                    textarea.short name="mailboxes" placeholder="mario.rossi\nsegreteria" { (d.mailboxes.join("\n")) } }
                div.form-actions { (back_button(&ctx)) button.btn.primary type="submit" { (ctx.t("Avanti", "Next")) " →" } }
            }
        },
        _ => {
            let running = &panel.provider.config;
            let changed = identity_changed(running, &d);
            html! {
                h2 { (ctx.t("Riepilogo", "Summary")) }
                table.kv {
                    tr { th { (ctx.t("Gestore", "Provider")) } td { (d.name) } }
                    tr { th { (ctx.t("Domini PEC", "PEC domains")) } td { (d.domains.join(", ")) } }
                    tr { th { "Hostname" } td { (d.hostname) } }
                    tr { th { (ctx.t("Amministratore", "Administrator")) } td { "admin" } }
                    tr { th { (ctx.t("Caselle", "Mailboxes")) } td { @if d.mailboxes.is_empty() { "—" } @else { (d.mailboxes.join(", ")) } } }
                    tr { th { (ctx.t("Impostazioni salvate in", "Settings saved to")) } td.mono.break { (override_path(running).display()) } }
                }
                @if changed {
                    p.note { (ctx.t(
                        "Nome, domini o hostname cambiano: le impostazioni vengono salvate nella cartella dati e i certificati autoemessi rinnovati; pecbox va riavviato per usarli.",
                        "Name, domains or hostname change: the settings are saved in the data folder and the self-made certificates renewed; pecbox must be restarted to use them."
                    )) }
                }
                form method="post" action="/setup/finish" {
                    (csrf(&ctx))
                    div.form-actions { (back_button(&ctx)) button.btn.primary type="submit" { (ctx.t("Completa la configurazione", "Complete setup")) } }
                }
            }
        }
    };
    Ok(wizard_page(&panel, &ctx, d.step.clamp(1, 4), content))
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

async fn code(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<CodeForm>,
) -> PanelResult {
    if panel.setup_done() {
        return Ok(Redirect::to("/login").into_response());
    }
    const ACCOUNT: &str = "setup";
    if panel.lockout.locked(ctx.ip, ACCOUNT) {
        return Err(PanelError::Locked);
    }
    let expected = files::setup_code(&panel.provider.config)?;
    let given = form.code.trim().to_ascii_uppercase();
    if !super::session::constant_time_eq(&given, &expected) {
        panel.lockout.failed(ctx.ip, ACCOUNT);
        panel.sessions.flash(
            &ctx,
            Flash::error(ctx.t("Codice non valido.", "Wrong code.")),
        );
        return Ok(Redirect::to("/setup").into_response());
    }
    panel.lockout.succeeded(ACCOUNT);
    let config = &panel.provider.config;
    let (id, _) = panel.sessions.create_with(
        Role::Setup,
        Draft {
            step: 1,
            name: config.provider.name.clone(),
            domains: config.provider.domains.clone(),
            hostname: config.provider.hostname.clone(),
            ..Default::default()
        },
    );
    if let Some(old) = &ctx.sid {
        panel.sessions.remove(old);
    }
    let mut response = Redirect::to("/setup").into_response();
    if let Ok(v) = HeaderValue::from_str(&super::session::session_cookie(&id)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

fn require_setup(panel: &Panel, ctx: &Ctx) -> PanelResult<()> {
    if panel.setup_done() {
        return Err(PanelError::Forbidden("setup is already complete"));
    }
    if ctx.role != Role::Setup {
        return Err(PanelError::Forbidden("enter the setup code first"));
    }
    Ok(())
}

#[derive(Deserialize)]
struct ProviderForm {
    name: String,
    domains: String,
    hostname: String,
}

async fn provider(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<ProviderForm>,
) -> PanelResult {
    require_setup(&panel, &ctx)?;
    let domains: Vec<String> = form
        .domains
        .split([',', ' ', ';', '\n'])
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    let name = form.name.trim().to_string();
    let hostname = form.hostname.trim().to_ascii_lowercase();
    let error = if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        Some(ctx.t("Indica il nome del gestore.", "Give the provider's name."))
    } else if domains.is_empty() || !domains.iter().all(|d| configfile::check_domain(d)) {
        Some(ctx.t(
            "Indica almeno un dominio PEC valido.",
            "Give at least one valid PEC domain.",
        ))
    } else if !configfile::check_domain(&hostname) {
        Some(ctx.t("Nome host non valido.", "Invalid host name."))
    } else {
        None
    };
    if let Some(e) = error {
        panel.sessions.flash(&ctx, Flash::error(e));
    } else {
        save_draft(&panel, &ctx, |d| {
            d.name = name;
            d.domains = domains;
            d.hostname = hostname;
            d.step = 2;
        });
    }
    Ok(Redirect::to("/setup").into_response())
}

#[derive(Deserialize)]
struct AdminForm {
    password: String,
    repeat: String,
}

async fn admin(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<AdminForm>,
) -> PanelResult {
    require_setup(&panel, &ctx)?;
    if form.password != form.repeat || form.password.chars().count() < 10 {
        panel.sessions.flash(
            &ctx,
            Flash::error(ctx.t(
                "La password deve avere almeno 10 caratteri e coincidere con la ripetizione.",
                "The password needs at least 10 characters and must match its repetition.",
            )),
        );
        return Ok(Redirect::to("/setup").into_response());
    }
    let hash =
        tokio::task::spawn_blocking(move || crate::provider::auth::hash_password(&form.password))
            .await
            .map_err(|e| PanelError::Internal(e.to_string()))?
            .map_err(PanelError::Internal)?;
    save_draft(&panel, &ctx, |d| {
        d.admin_hash = Some(hash);
        d.step = 3;
    });
    Ok(Redirect::to("/setup").into_response())
}

#[derive(Deserialize)]
struct MailboxesForm {
    #[serde(default)]
    mailboxes: String,
}

/// Full, lower-case addresses from the wizard's lines.
fn mailbox_addresses(text: &str, domains: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let address = if line.contains('@') {
            line.to_ascii_lowercase()
        } else {
            format!(
                "{}@{}",
                line.to_ascii_lowercase(),
                domains.first().cloned().unwrap_or_default()
            )
        };
        let (local, domain) = address.rsplit_once('@').unwrap_or_default();
        let ok = !local.is_empty()
            && local.len() <= 64
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && domains.iter().any(|d| d == domain);
        if !ok {
            return Err(line.to_string());
        }
        if !out.contains(&address) {
            out.push(address);
        }
    }
    if out.len() > 200 {
        return Err("…".into());
    }
    Ok(out)
}

async fn mailboxes(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<MailboxesForm>,
) -> PanelResult {
    require_setup(&panel, &ctx)?;
    let d = draft(&panel, &ctx);
    match mailbox_addresses(&form.mailboxes, &d.domains) {
        Ok(list) => save_draft(&panel, &ctx, |d| {
            d.mailboxes = list;
            d.step = 4;
        }),
        Err(bad) => panel.sessions.flash(
            &ctx,
            Flash::error(format!(
                "{}: {bad}",
                ctx.t(
                    "Casella non valida (o di un dominio non indicato)",
                    "Invalid mailbox (or of a domain not listed)"
                )
            )),
        ),
    }
    Ok(Redirect::to("/setup").into_response())
}

async fn step_back(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    require_setup(&panel, &ctx)?;
    save_draft(&panel, &ctx, |d| d.step = d.step.saturating_sub(1).max(1));
    Ok(Redirect::to("/setup").into_response())
}

fn identity_changed(running: &crate::config::Config, d: &Draft) -> bool {
    running.provider.name != d.name
        || running.provider.domains != d.domains
        || !running.provider.hostname.eq_ignore_ascii_case(&d.hostname)
}

/// Where the panel's settings go, as an absolute path for the pages.
fn override_path(config: &crate::config::Config) -> std::path::PathBuf {
    crate::config::display_path(&config.override_path())
}

fn pending_path(config: &crate::config::Config) -> std::path::PathBuf {
    files::panel_dir(config).join("pending-mailboxes.json")
}

/// Creates the mailboxes the wizard left for the next start (their domain is managed
/// now). Called when the panel starts.
pub fn create_pending(provider: &crate::provider::Provider) {
    let path = pending_path(&provider.config);
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    let pending: Vec<Pending> = serde_json::from_slice(&bytes).unwrap_or_default();
    let mut left = Vec::new();
    for p in pending {
        if !provider.is_local(&p.address) {
            left.push(p);
            continue;
        }
        let mailbox = Mailbox {
            address: p.address.clone(),
            password_hash: p.password_hash.clone(),
            quota: None,
            disabled: false,
            created: crate::provider::unix_now(),
            ordinary_mail: OrdinaryMailPolicy::Refuse,
        };
        match provider.store.add_mailbox(&mailbox) {
            Ok(()) | Err(crate::store::StoreError::MailboxExists(_)) => {
                tracing::info!(address = %p.address, "mailbox from the setup wizard created");
            }
            Err(e) => {
                tracing::error!(address = %p.address, "mailbox from the setup wizard: {e}");
                left.push(p);
            }
        }
    }
    let _ = provider.store.flush();
    if left.is_empty() {
        let _ = std::fs::remove_file(&path);
    } else if let Ok(json) = serde_json::to_vec(&left) {
        let _ = files::write_atomic(&path, &json, 0o600);
    }
}

async fn finish(State(panel): State<Arc<Panel>>, ctx: Ctx) -> PanelResult {
    require_setup(&panel, &ctx)?;
    let d = draft(&panel, &ctx);
    let Some(admin_hash) = d.admin_hash.clone().filter(|_| d.step >= 4) else {
        return Ok(Redirect::to("/setup").into_response());
    };
    let running = panel.provider.config.clone();
    let changed = identity_changed(&running, &d);

    // 1. The settings, into the override below the data folder (the factory file is
    //    never written); on failure nothing else happens and the wizard stays open.
    let base = configfile::saved(&running).unwrap_or_else(|_| running.clone());
    let mut s = Settings::of(&base);
    s.name = d.name.clone();
    s.domains = d.domains.clone();
    s.hostname = d.hostname.clone();
    let saved = match configfile::save(&running, &s) {
        Ok(saved) => saved,
        Err(e) => {
            tracing::error!("setup: {e}");
            panel.sessions.flash(&ctx, Flash::error(e.to_string()));
            return Ok(Redirect::to("/setup").into_response());
        }
    };
    // 2. Self-made certificates for the new identity, once the saved settings name it.
    let mut renewed = false;
    let next = match &saved {
        Saved::Written { config, .. } => Some((**config).clone()),
        Saved::Unchanged { .. } => configfile::saved(&running).ok(),
    };
    if let (true, Some(next)) = (changed, next.filter(|n| !identity_changed(n, &d))) {
        let paths = super::certs::paths(&next);
        let self_made = |p: &std::path::Path| {
            std::fs::read_to_string(p).is_ok_and(|pem| super::certs::self_made(&next, &pem))
        };
        for (role, cert) in [
            (super::certs::Role::Signing, &paths.signing_cert),
            (super::certs::Role::Tls, &paths.tls_cert),
        ] {
            if self_made(cert) {
                let next = next.clone();
                let r = tokio::task::spawn_blocking(move || super::certs::renew(&next, role))
                    .await
                    .map_err(|e| PanelError::Internal(e.to_string()))?;
                match r {
                    Ok(()) => renewed = true,
                    Err(e) => tracing::error!("setup: renewing the {role:?} certificate: {e}"),
                }
            }
        }
    }
    // 3. Mailboxes: now if their domain is served already, else at the next start.
    let mut created: Vec<(String, String, bool)> = Vec::new();
    let mut errors = Vec::new();
    let mut pending = Vec::new();
    for address in &d.mailboxes {
        if panel.provider.is_local(address) {
            match super::admin::create_mailbox(&panel, address, None, None).await {
                Ok((a, Some(p))) => created.push((a, p, true)),
                Ok((a, None)) => created.push((a, String::new(), true)),
                Err(e) => errors.push(e),
            }
        } else {
            let password = crate::provider::auth::generate_password();
            let p2 = password.clone();
            let hash =
                tokio::task::spawn_blocking(move || crate::provider::auth::hash_password(&p2))
                    .await
                    .map_err(|e| PanelError::Internal(e.to_string()))?
                    .map_err(PanelError::Internal)?;
            pending.push(Pending {
                address: address.clone(),
                password_hash: hash,
            });
            created.push((address.clone(), password, false));
        }
    }
    if !pending.is_empty() {
        let json = serde_json::to_vec(&pending).map_err(|e| PanelError::Internal(e.to_string()))?;
        files::write_atomic(&pending_path(&running), &json, 0o600)?;
    }
    // 4. The admin password: from here on, setup is done.
    files::set_admin_hash(&running, &admin_hash)?;
    files::remove_setup_code(&running);
    if let Some(id) = &ctx.sid {
        panel.sessions.remove(id);
    }
    tracing::info!(provider = %d.name, mailboxes = created.len(), "setup wizard completed");
    let restart = changed;
    let content = html! {
        div.done-head {
            h2 { "✔ " (ctx.t("Configurazione completata", "Setup complete")) }
            @if restart {
                p.note { (ctx.t(
                    "Riavvia pecbox per usare il nuovo nome, i domini e i certificati: le caselle dei nuovi domini vengono create al prossimo avvio.",
                    "Restart pecbox to use the new name, domains and certificates: mailboxes of new domains are created at the next start."
                )) @if renewed { " " (ctx.t("I certificati autoemessi sono stati rinnovati.", "The self-made certificates were renewed.")) } }
            } @else {
                p { (ctx.t("Il box è in servizio.", "The box is in service.")) }
            }
        }
        @if !created.is_empty() {
            h3 { (ctx.t("Caselle create", "Mailboxes created")) }
            p.muted.small { (ctx.t("Annota le password: sono mostrate una sola volta.", "Write the passwords down: they are shown only once.")) }
            div.table-wrap { table.created {
                thead { tr { th { (ctx.t("Casella", "Mailbox")) } th { "Password" } } }
                tbody { @for (a, p, now) in &created { tr {
                    td { (a) @if !now { " " span.badge.pending { (ctx.t("al riavvio", "at restart")) } } }
                    td { code.secret { (p) } }
                } } }
            } }
        }
        @for e in &errors { div.flash.error { (e) } }
        h3 { (ctx.t("Configurazione", "Configuration")) }
        @match &saved {
            Saved::Written { path, .. } => p {
                (ctx.t("Impostazioni salvate in", "Settings saved to")) " " code { (path.display()) }
                " " (ctx.t("(il file di fabbrica resta invariato).", "(the factory file stays as it is)."))
            },
            Saved::Unchanged { .. } => p { (ctx.t("Invariata:", "Unchanged:")) " " code { (running.layers.factory_origin) } },
        }
        h3 { (ctx.t("Da consegnare agli altri gestori", "For the other providers")) }
        p.muted.small { (ctx.t(
            "Il certificato della CA del box e la voce di questo gestore nell'indice dei gestori.",
            "The box's CA certificate and this provider's entry of the providers' index."
        )) }
        div.downloads {
            a.btn href="/ca.pem" { (ctx.t("Certificato CA (.pem)", "CA certificate (.pem)")) }
            a.btn href="/index-entry.ldif" { (ctx.t("Voce dell'indice (.ldif)", "Index entry (.ldif)")) }
        }
        div.form-actions { a.btn.primary href="/login" { (ctx.t("Vai al pannello", "Go to the panel")) " →" } }
    };
    let ctx = Ctx {
        role: Role::Anonymous,
        ..ctx
    };
    Ok(wizard_page(&panel, &ctx, 5, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wizard_mailboxes() {
        let domains = vec!["pec.x.test".to_string(), "pec.y.test".to_string()];
        assert_eq!(
            mailbox_addresses("Mario.Rossi\n\nanna@pec.y.test\nmario.rossi", &domains).unwrap(),
            ["mario.rossi@pec.x.test", "anna@pec.y.test"]
        );
        assert!(mailbox_addresses("x@gmail.com", &domains).is_err());
        assert!(mailbox_addresses("a b", &domains).is_err());
        assert!(mailbox_addresses("../etc", &domains).is_err());
    }
}
