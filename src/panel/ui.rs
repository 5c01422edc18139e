//! The look: page layout, navigation, flashes, formatting, the stylesheet and logo
//! (embedded, so the binary stays self-contained), and the two languages.

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::TimeZone;
use maud::{html, Markup, DOCTYPE};

use super::session::{Ctx, Role};
use super::Panel;

const CSS: &str = include_str!("assets/panel.css");
const LOGO: &str = include_str!("assets/logo.svg");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    It,
    En,
}

impl Lang {
    pub fn t(self, it: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::It => it,
            Lang::En => en,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::It => "it",
            Lang::En => "en",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Ok,
    Error,
    Info,
}

/// A message shown once at the top of the next page.
#[derive(Debug, Clone)]
pub struct Flash {
    pub kind: FlashKind,
    pub text: String,
    /// A value to copy (a generated password), shown in monospace.
    pub secret: Option<String>,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Ok,
            text: text.into(),
            secret: None,
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Error,
            text: text.into(),
            secret: None,
        }
    }

    pub fn info(text: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Info,
            text: text.into(),
            secret: None,
        }
    }

    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }
}

/// Which navigation the page shows, and what is active in it.
pub enum Nav {
    None,
    Setup,
    Admin(&'static str),
    /// The holder's pages: the active folder, or "compose" / "account".
    Holder(String),
}

pub struct PageOptions {
    /// Seconds after which the page reloads itself (no script needed).
    pub refresh: Option<u32>,
}

pub fn page(panel: &Panel, ctx: &Ctx, title: &str, nav: Nav, body: Markup) -> Response {
    page_with(panel, ctx, title, nav, body, PageOptions { refresh: None })
}

pub fn page_with(
    panel: &Panel,
    ctx: &Ctx,
    title: &str,
    nav: Nav,
    body: Markup,
    opts: PageOptions,
) -> Response {
    let flashes = panel.sessions.take_flash(ctx);
    let config = &panel.provider.config;
    let lang = ctx.lang;
    let side = match &nav {
        Nav::Admin(active) => Some(admin_nav(ctx, active)),
        Nav::Holder(active) => Some(holder_nav(panel, ctx, active)),
        Nav::Setup | Nav::None => None,
    };
    let lang_link = |code: &str| {
        format!(
            "/lang?set={code}&next={}",
            percent_encode(if ctx.here.starts_with('/') {
                &ctx.here
            } else {
                "/"
            })
        )
    };
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light";
                @if let Some(secs) = opts.refresh {
                    meta http-equiv="refresh" content=(secs);
                }
                title { (title) " · " (config.provider.name) }
                link rel="stylesheet" href="/static/panel.css";
                link rel="icon" href="/static/logo.svg" type="image/svg+xml";
            }
            body.plain[side.is_none()] {
                header.topbar {
                    a.brand href="/" {
                        img src="/static/logo.svg" alt="" width="30" height="30";
                        span.brand-name { "pecbox" }
                        span.brand-provider { (config.provider.name) }
                    }
                    div.top-right {
                        nav.lang aria-label="Lingua / Language" {
                            a.active[lang == Lang::It] href=(lang_link("it")) { "IT" }
                            a.active[lang == Lang::En] href=(lang_link("en")) { "EN" }
                        }
                        @match &ctx.role {
                            Role::Admin => {
                                span.who { span.dot.admin {} (lang.t("Amministratore", "Administrator")) }
                            }
                            Role::Holder(address) => {
                                span.who { span.dot {} (address) }
                            }
                            _ => {}
                        }
                        @if matches!(ctx.role, Role::Admin | Role::Holder(_)) {
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                button.btn.ghost.small type="submit" { (lang.t("Esci", "Sign out")) }
                            }
                        }
                    }
                }
                div.shell {
                    @if let Some(side) = &side {
                        aside.sidenav { (side) }
                    }
                    main.content {
                        @for f in &flashes {
                            div class=(match f.kind {
                                FlashKind::Ok => "flash ok",
                                FlashKind::Error => "flash error",
                                FlashKind::Info => "flash info",
                            }) role="status" {
                                span { (f.text) }
                                @if let Some(secret) = &f.secret {
                                    code.secret { (secret) }
                                }
                            }
                        }
                        (body)
                    }
                }
                footer.foot {
                    span { "pecbox " (env!("CARGO_PKG_VERSION")) }
                    span { " · " (config.provider.name) " · " (config.provider.domains.join(", ")) }
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

fn admin_nav(ctx: &Ctx, active: &str) -> Markup {
    let items: [(&str, &str, &str, &str); 8] = [
        ("dashboard", "/admin", "Stato", "Status"),
        ("mailboxes", "/admin/mailboxes", "Caselle", "Mailboxes"),
        (
            "index",
            "/admin/index",
            "Indice dei gestori",
            "Providers' index",
        ),
        ("certs", "/admin/certs", "Certificati", "Certificates"),
        ("queue", "/admin/queue", "Coda in uscita", "Outbound queue"),
        ("log", "/admin/log", "Registro dei log", "Log"),
        ("settings", "/admin/settings", "Impostazioni", "Settings"),
        ("update", "/admin/update", "Aggiornamenti", "Updates"),
    ];
    html! {
        div.nav-title { (ctx.t("Amministrazione", "Administration")) }
        ul.nav {
            @for (key, href, it, en) in items {
                li { a.active[key == active] href=(href) { span class=(format!("icon i-{key}")) {} (ctx.lang.t(it, en)) } }
            }
        }
    }
}

fn holder_nav(panel: &Panel, ctx: &Ctx, active: &str) -> Markup {
    let address = match &ctx.role {
        Role::Holder(a) => a.clone(),
        _ => String::new(),
    };
    let store = &panel.provider.store;
    let folders = store.folders(&address).unwrap_or_default();
    let unread = |folder: &str| {
        store
            .list(&address, folder)
            .map(|l| {
                l.iter()
                    .filter(|m| !m.flags.iter().any(|f| f == "\\Seen"))
                    .count()
            })
            .unwrap_or(0)
    };
    html! {
        a.btn.primary.compose href="/mail/compose" { (ctx.t("Scrivi PEC", "New PEC")) }
        div.nav-title { (ctx.t("Cartelle", "Folders")) }
        ul.nav {
            @for (name, _) in &folders {
                @let n = if name == crate::store::INBOX { unread(name) } else { 0 };
                li {
                    a.active[active == name] href=(format!("/mail?f={}", percent_encode(name))) {
                        span class=(format!("icon {}", folder_icon(name))) {}
                        (folder_label(ctx, name))
                        @if n > 0 { span.count { (n) } }
                    }
                }
            }
        }
        div.nav-title { "GestioneMail" }
        ul.nav {
            li { a.active[active == "account"] href="/account" { span.icon.i-settings {} (ctx.t("Impostazioni casella", "Mailbox settings")) } }
            li { a.active[active == "access"] href="/account/access" { span.icon.i-log {} (ctx.t("Accessi", "Sign-ins")) } }
        }
    }
}

fn folder_icon(name: &str) -> &'static str {
    match name {
        crate::store::INBOX => "i-inbox",
        crate::store::SENT => "i-sent",
        _ => "i-folder",
    }
}

pub fn folder_label(ctx: &Ctx, name: &str) -> String {
    match name {
        crate::store::INBOX => ctx.t("Posta in arrivo", "Inbox").into(),
        crate::store::SENT => ctx.t("Posta inviata", "Sent").into(),
        other => other.to_string(),
    }
}

/// A standalone page for errors (no session needed).
pub fn error_page(status: StatusCode, detail: &str) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="it" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (status.as_u16()) " · pecbox" }
                link rel="stylesheet" href="/static/panel.css";
            }
            body.plain {
                main.content {
                    div.card.error-card {
                        h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                        @if !detail.is_empty() { p { (detail) } }
                        p { a.btn href="/" { "Torna al pannello · Back to the panel" } }
                    }
                }
            }
        }
    };
    Html(markup.into_string())
}

pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

pub async fn logo() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        LOGO,
    )
        .into_response()
}

/// A hidden CSRF field: every form starts with it.
pub fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

/// Percent-encoding for a query value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A moment in Italian legal time, as the holder reads it.
pub fn time(unix: i64) -> String {
    match chrono_tz::Europe::Rome.timestamp_opt(unix, 0).single() {
        Some(t) => t.format("%d/%m/%Y %H:%M").to_string(),
        None => "—".into(),
    }
}

pub fn time_short(unix: i64) -> String {
    let Some(t) = chrono_tz::Europe::Rome.timestamp_opt(unix, 0).single() else {
        return "—".into();
    };
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Rome);
    if t.date_naive() == now.date_naive() {
        t.format("%H:%M").to_string()
    } else {
        t.format("%d/%m/%y").to_string()
    }
}

pub fn duration(lang: Lang, secs: u64) -> String {
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    match (d, lang) {
        (0, _) if h == 0 => format!("{m} min"),
        (0, Lang::It) => format!("{h} ore {m} min"),
        (0, Lang::En) => format!("{h} h {m} min"),
        (_, Lang::It) => format!("{d} giorni {h} ore"),
        (_, Lang::En) => format!("{d} days {h} h"),
    }
}

/// A page header with a title, an optional subtitle and actions on the right.
pub fn heading(title: &str, subtitle: Option<&str>, actions: Markup) -> Markup {
    html! {
        div.page-head {
            div {
                h1 { (title) }
                @if let Some(s) = subtitle { p.muted { (s) } }
            }
            div.actions { (actions) }
        }
    }
}

pub fn empty() -> Markup {
    html! {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KB");
        assert_eq!(size(31_457_280), "30.0 MB");
        assert_eq!(percent_encode("Fatture 2024/é"), "Fatture%202024/%C3%A9");
        assert_eq!(time(0), "01/01/1970 01:00");
        assert_eq!(duration(Lang::It, 3 * 86400 + 7200), "3 giorni 2 ore");
    }
}
