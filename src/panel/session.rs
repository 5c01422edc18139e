//! Sessions (random ids in Secure, HttpOnly, SameSite=Strict cookies; the table lives
//! in memory with idle and absolute expiry), CSRF tokens, login with lockout per IP and
//! per account, the language switch, and the security headers on every answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::html;
use serde::Deserialize;

use super::ui::{self, Flash, Lang, Nav};
use super::{files, Panel, PanelError, PanelResult, FORM_LIMIT};
use crate::provider::auth::LoginError;

const SESSION_COOKIE: &str = "pbx_sid";
const LANG_COOKIE: &str = "pbx_lang";
/// Idle and absolute lifetimes of a logged-in session; anonymous ones (which only carry
/// the CSRF token of the login form) live as long as the idle time.
const IDLE: Duration = Duration::from_secs(30 * 60);
const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
const MAX_SESSIONS: usize = 20_000;

/// Lockout: so many failures within the window lock the key for `LOCK`.
const IP_FAILURES: u32 = 20;
const ACCOUNT_FAILURES: u32 = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const LOCK: Duration = Duration::from_secs(15 * 60);

pub const ADMIN_USER: &str = "admin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Anonymous,
    /// Entered the setup code: may run the wizard.
    Setup,
    Admin,
    /// A PEC holder, by mailbox address.
    Holder(String),
}

pub struct Session {
    pub role: Role,
    pub csrf: String,
    created: Instant,
    last: Instant,
    pub flash: Vec<Flash>,
    pub wizard: super::setup::Draft,
}

impl Session {
    fn new(role: Role) -> Self {
        Self {
            role,
            csrf: files::random_token(),
            created: Instant::now(),
            last: Instant::now(),
            flash: Vec::new(),
            wizard: Default::default(),
        }
    }

    fn expired(&self) -> bool {
        self.last.elapsed() > IDLE || self.created.elapsed() > ABSOLUTE
    }
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lookup(&self, id: &str) -> Option<(Role, String)> {
        let mut map = self.map.lock().ok()?;
        let s = map.get_mut(id)?;
        if s.expired() {
            map.remove(id);
            return None;
        }
        s.last = Instant::now();
        Some((s.role.clone(), s.csrf.clone()))
    }

    fn create(&self, role: Role) -> (String, String) {
        self.create_with(role, Default::default())
    }

    /// A new session (a fresh random id) with the wizard's draft.
    pub fn create_with(&self, role: Role, wizard: super::setup::Draft) -> (String, String) {
        let id = files::random_token();
        let mut session = Session::new(role);
        session.wizard = wizard;
        let csrf = session.csrf.clone();
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_SESSIONS {
                map.retain(|_, s| !s.expired());
                if map.len() >= MAX_SESSIONS {
                    // Flooded with anonymous visits: drop those, keep the logged-in.
                    map.retain(|_, s| s.role != Role::Anonymous);
                }
            }
            map.insert(id.clone(), session);
        }
        (id, csrf)
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }

    /// Ends every session of a holder (after a password change) except `keep`.
    pub fn end_holder(&self, address: &str, keep: Option<&str>) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|id, s| Some(id.as_str()) == keep || s.role != Role::Holder(address.into()));
        }
    }

    /// Runs `f` on the session, if it is still there.
    pub fn with<T>(&self, id: &str, f: impl FnOnce(&mut Session) -> T) -> Option<T> {
        let mut map = self.map.lock().ok()?;
        map.get_mut(id).map(f)
    }

    pub fn flash(&self, ctx: &Ctx, flash: Flash) {
        if let Some(id) = &ctx.sid {
            self.with(id, |s| s.flash.push(flash));
        }
    }

    pub fn take_flash(&self, ctx: &Ctx) -> Vec<Flash> {
        ctx.sid
            .as_deref()
            .and_then(|id| self.with(id, |s| std::mem::take(&mut s.flash)))
            .unwrap_or_default()
    }
}

struct Failures {
    count: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

/// Failed logins per IP and per account; past the limit the key is locked and attempts
/// are refused without looking at the password.
#[derive(Default)]
pub struct Lockout {
    map: Mutex<HashMap<String, Failures>>,
}

fn ip_key(ip: IpAddr) -> String {
    format!("ip:{ip}")
}

fn account_key(account: &str) -> String {
    format!("acct:{}", account.trim().to_ascii_lowercase())
}

impl Lockout {
    pub fn locked(&self, ip: IpAddr, account: &str) -> bool {
        let Ok(map) = self.map.lock() else {
            return true;
        };
        [ip_key(ip), account_key(account)].iter().any(|k| {
            map.get(k)
                .and_then(|f| f.locked_until)
                .is_some_and(|until| Instant::now() < until)
        })
    }

    pub fn failed(&self, ip: IpAddr, account: &str) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.len() > 100_000 {
            map.retain(|_, f| f.since.elapsed() < WINDOW || f.locked_until.is_some());
        }
        for (key, limit) in [
            (ip_key(ip), IP_FAILURES),
            (account_key(account), ACCOUNT_FAILURES),
        ] {
            let f = map.entry(key).or_insert(Failures {
                count: 0,
                since: Instant::now(),
                locked_until: None,
            });
            let lock_over = f.locked_until.is_some_and(|u| Instant::now() >= u);
            if f.since.elapsed() > WINDOW || lock_over {
                *f = Failures {
                    count: 0,
                    since: Instant::now(),
                    locked_until: None,
                };
            }
            f.count += 1;
            if f.count >= limit {
                f.locked_until = Some(Instant::now() + LOCK);
            }
        }
    }

    pub fn succeeded(&self, account: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(&account_key(account));
        }
    }
}

/// What every handler knows about the request.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub ip: IpAddr,
    pub sid: Option<String>,
    pub role: Role,
    pub csrf: String,
    /// Path and query, for the language switch.
    pub here: String,
}

impl Ctx {
    /// The holder's address; a signed-in administrator is refused (roles never mix).
    pub fn holder(&self) -> PanelResult<&str> {
        match &self.role {
            Role::Holder(a) => Ok(a),
            Role::Admin => Err(PanelError::Forbidden("holders only")),
            _ => Err(PanelError::LoginRequired),
        }
    }

    /// Administrators only; a signed-in holder is refused.
    pub fn admin(&self) -> PanelResult<()> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Holder(_) => Err(PanelError::Forbidden("administrators only")),
            _ => Err(PanelError::LoginRequired),
        }
    }

    pub fn t(&self, it: &'static str, en: &'static str) -> &'static str {
        self.lang.t(it, en)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Ctx>()
            .cloned()
            .ok_or_else(|| PanelError::Internal("request without panel context".into()))
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(super) fn session_cookie(id: &str) -> String {
    format!("{SESSION_COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// Paths served without a session (and before setup).
fn is_public_asset(path: &str) -> bool {
    path.starts_with("/static/")
        || path == "/favicon.ico"
        || path == "/.well-known/autoconfig/mail/config-v1.1.xml"
        || path == "/mail/config-v1.1.xml"
        || path == "/ca.pem"
        || path == "/index-entry.ldif"
}

pub(super) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The middleware every route goes through.
pub async fn layer(State(panel): State<Arc<Panel>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let here = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let ip = req
        .extensions()
        .get::<super::PeerAddr>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let lang = match cookie(req.headers(), LANG_COOKIE) {
        Some("en") => Lang::En,
        _ => Lang::It,
    };
    if is_public_asset(&path) {
        let ctx = Ctx {
            lang,
            ip,
            sid: None,
            role: Role::Anonymous,
            csrf: String::new(),
            here,
        };
        req.extensions_mut().insert(ctx);
        return secure(next.run(req).await, false);
    }
    let existing = cookie(req.headers(), SESSION_COOKIE)
        .map(str::to_string)
        .and_then(|id| panel.sessions.lookup(&id).map(|(r, c)| (id, r, c)));
    let is_form_post = !matches!(*req.method(), Method::GET | Method::HEAD);
    let (sid, role, csrf, new_cookie) = match existing {
        Some((id, role, csrf)) => (Some(id), role, csrf, None),
        // A form post without a live session cannot carry a valid token.
        None if is_form_post => {
            return secure(csrf_refused(lang), true);
        }
        None => {
            let (id, csrf) = panel.sessions.create(Role::Anonymous);
            (Some(id.clone()), Role::Anonymous, csrf, Some(id))
        }
    };
    if is_form_post {
        match check_csrf(req, &csrf).await {
            Ok(checked) => req = checked,
            Err(response) => return secure(response, true),
        }
    }
    // Until setup is done the wizard is the only thing to see.
    let setup_paths = path == "/setup" || path.starts_with("/setup/") || path == "/lang";
    if !panel.setup_done() && !setup_paths {
        return secure(Redirect::to("/setup").into_response(), true);
    }
    let ctx = Ctx {
        lang,
        ip,
        sid,
        role,
        csrf,
        here,
    };
    req.extensions_mut().insert(ctx);
    let mut response = secure(next.run(req).await, true);
    if let Some(id) = new_cookie {
        if let Ok(v) = HeaderValue::from_str(&session_cookie(&id)) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Urlencoded forms are checked here (the body is buffered and handed on); multipart
/// uploads carry the token as a field that `super::webmail::Upload` checks before
/// anything else; no other body type is accepted.
pub(super) async fn check_csrf(req: Request, csrf: &str) -> Result<Request, Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        return Ok(req);
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response());
    }
    let (parts, body) = req.into_parts();
    let bytes = read_form(body).await.map_err(IntoResponse::into_response)?;
    let token = form_urlencoded_value(&bytes, "csrf");
    if !token.as_deref().is_some_and(|t| constant_time_eq(t, csrf)) {
        return Err(csrf_refused(Lang::It));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The body of a form, at most FORM_LIMIT bytes. A longer one is read on (up to a cap)
/// and dropped, so the client receives the 413 rather than a reset connection.
async fn read_form(body: Body) -> Result<Bytes, PanelError> {
    use http_body_util::BodyExt;
    const DRAIN: usize = 4 * 1024 * 1024;
    let mut body = body;
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(PanelError::BadRequest("unreadable request body".into()));
        };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > DRAIN {
                break;
            }
            if seen <= FORM_LIMIT {
                kept.extend_from_slice(&data);
            }
        }
    }
    if seen > FORM_LIMIT {
        return Err(PanelError::TooLarge);
    }
    Ok(Bytes::from(kept))
}

pub fn csrf_ok(given: &str, ctx: &Ctx) -> bool {
    !ctx.csrf.is_empty() && constant_time_eq(given, &ctx.csrf)
}

fn form_urlencoded_value(body: &[u8], name: &str) -> Option<String> {
    url_pairs(body)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// `application/x-www-form-urlencoded` decoding (lenient: a stray `%` stays as is).
pub fn url_pairs(body: &[u8]) -> Vec<(String, String)> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' => match (
                    s.get(i + 1).and_then(|b| hex(*b)),
                    s.get(i + 2).and_then(|b| hex(*b)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut it = p.splitn(2, |b| *b == b'=');
            let k = decode(it.next().unwrap_or_default());
            let v = decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

fn csrf_refused(lang: Lang) -> Response {
    (
        StatusCode::FORBIDDEN,
        ui::error_page(
            StatusCode::FORBIDDEN,
            lang.t(
                "Modulo scaduto o non valido: ricarica la pagina e riprova.",
                "This form has expired or is not valid: reload the page and try again.",
            ),
        ),
    )
        .into_response()
}

/// Security headers on every answer; logged-in pages are never cached.
fn secure(mut response: Response, private: bool) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-frame-options", "DENY");
    set(h, "strict-transport-security", "max-age=31536000");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    if private {
        set(h, "cache-control", "no-store");
    }
    response
}

pub fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/lang", get(set_lang))
}

async fn login_page(State(panel): State<Arc<Panel>>, ctx: Ctx) -> Response {
    match &ctx.role {
        Role::Admin => return Redirect::to("/admin").into_response(),
        Role::Holder(_) => return Redirect::to("/mail").into_response(),
        _ => {}
    }
    login_form(&panel, &ctx, StatusCode::OK, "")
}

fn login_form(panel: &Panel, ctx: &Ctx, status: StatusCode, user: &str) -> Response {
    let provider = &panel.provider.config.provider;
    let body = html! {
        div.auth {
            div.auth-card {
                div.auth-brand {
                    img src="/static/logo.svg" alt="" width="44" height="44";
                    div {
                        h1 { (provider.name) }
                        p.muted { (ctx.t("Posta Elettronica Certificata", "Certified e-mail (PEC)")) }
                    }
                }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    label {
                        span { (ctx.t("Casella PEC o \"admin\"", "PEC mailbox or \"admin\"")) }
                        input type="text" name="user" value=(user) autocomplete="username"
                            autocapitalize="none" spellcheck="false" required autofocus;
                    }
                    label {
                        span { "Password" }
                        input type="password" name="password" autocomplete="current-password" required;
                    }
                    button.btn.primary.wide type="submit" { (ctx.t("Accedi", "Sign in")) }
                }
                p.auth-foot {
                    a href="/reset" { (ctx.t("Password dimenticata?", "Forgot your password?")) }
                }
            }
            p.auth-domains.muted { (provider.domains.join(" · ")) }
        }
    };
    let mut response = ui::page(panel, ctx, ctx.t("Accesso", "Sign in"), Nav::None, body);
    *response.status_mut() = status;
    response
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(
    State(panel): State<Arc<Panel>>,
    ctx: Ctx,
    Form(form): Form<LoginForm>,
) -> PanelResult {
    let user = form.user.trim().to_ascii_lowercase();
    if user.is_empty() || user.len() > 320 || form.password.len() > 1024 {
        return Err(PanelError::BadRequest("invalid credentials".into()));
    }
    let outcome = if user == ADMIN_USER {
        let config = panel.provider.config.clone();
        let checked = panel
            .provider
            .auth
            .check(ctx.ip, ADMIN_USER, &form.password, move || {
                Ok(files::admin_hash(&config).map(|h| (h, ())))
            })
            .await;
        match &checked {
            Ok(_) => tracing::info!(peer = %ctx.ip, protocol = "web", "admin login"),
            Err(e) => tracing::warn!(peer = %ctx.ip, protocol = "web", "failed admin login: {e}"),
        }
        checked.map(|_| Role::Admin)
    } else {
        crate::provider::Provider::login(&panel.provider, "web", ctx.ip, &user, &form.password)
            .await
            .map(Role::Holder)
    };
    let role = match outcome {
        Ok(role) => role,
        Err(why) => {
            let (status, flash) = match why {
                LoginError::Rejected => (
                    StatusCode::UNAUTHORIZED,
                    ctx.t("Credenziali non valide.", "Wrong user name or password."),
                ),
                LoginError::AddressBlocked => (
                    StatusCode::TOO_MANY_REQUESTS,
                    ctx.t(
                        "Troppi tentativi falliti da questo indirizzo: riprova fra 15 minuti.",
                        "Too many failed attempts from this address: try again in 15 minutes.",
                    ),
                ),
                LoginError::Temporary(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ctx.t(
                        "Accesso momentaneamente non disponibile: riprova fra poco.",
                        "Sign-in is unavailable for a moment: try again shortly.",
                    ),
                ),
            };
            panel.sessions.flash(&ctx, Flash::error(flash));
            return Ok(login_form(&panel, &ctx, status, &user));
        }
    };
    // A fresh id at login: a session id seen before login is never a logged-in one.
    if let Some(old) = &ctx.sid {
        panel.sessions.remove(old);
    }
    let target = match role {
        Role::Admin => "/admin",
        _ => "/mail",
    };
    let (id, _) = panel.sessions.create(role);
    let mut response = Redirect::to(target).into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&id)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

async fn logout(State(panel): State<Arc<Panel>>, ctx: Ctx) -> Response {
    if let Some(id) = &ctx.sid {
        panel.sessions.remove(id);
    }
    let mut response = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
struct LangQuery {
    set: String,
    next: Option<String>,
}

/// A redirect target a client gave: a path on this panel, or None. `/` then a safe
/// character (no `//` or `/\\`, which browsers read as another host), printable ASCII
/// only (no tab, CR, LF or space, which URL parsers strip or split on).
pub fn local_path(next: &str) -> Option<&str> {
    let b = next.as_bytes();
    let ok = b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
        && !b.contains(&b'\\')
        && b.iter().all(u8::is_ascii_graphic)
        && b.len() <= 2048;
    ok.then_some(next)
}

/// `/lang?set=en&next=/mail`: only local paths are followed; anything else is a 400.
async fn set_lang(Query(q): Query<LangQuery>) -> Response {
    let lang = if q.set == "en" { "en" } else { "it" };
    let next = match q.next.as_deref() {
        None => "/".to_string(),
        Some(n) => match local_path(n) {
            Some(n) => n.to_string(),
            None => return (StatusCode::BAD_REQUEST, "next must be a local path").into_response(),
        },
    };
    let mut response = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={lang}; Path=/; Max-Age=31536000; Secure; SameSite=Strict"
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let pairs = url_pairs(b"csrf=a%2Bb&user=x+y&bad=%zz&t=%");
        assert_eq!(pairs[0], ("csrf".into(), "a+b".into()));
        assert_eq!(pairs[1], ("user".into(), "x y".into()));
        assert_eq!(pairs[2], ("bad".into(), "%zz".into()));
        assert_eq!(pairs[3], ("t".into(), "%".into()));
    }

    #[test]
    fn only_local_paths_are_followed() {
        for good in ["/", "/mail", "/mail?f=INBOX&uid=3", "/a/b%2Fc"] {
            assert_eq!(local_path(good), Some(good), "{good:?}");
        }
        for bad in [
            "",
            "mail",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/%0d",
            "/a\r\nSet-Cookie: x=1",
            "/a b",
            "https://evil.example/",
            "/\\",
            "/ü",
        ] {
            if bad == "/%0d" {
                assert!(local_path(bad).is_some(), "still encoded: harmless");
                continue;
            }
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lockout_per_account_and_ip() {
        let l = Lockout::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..ACCOUNT_FAILURES {
            assert!(!l.locked(ip, "a@x"));
            l.failed(ip, "a@x");
        }
        assert!(l.locked(ip, "a@x"));
        assert!(l.locked("192.0.2.9".parse().unwrap(), "A@x"), "per account");
        assert!(!l.locked("192.0.2.9".parse().unwrap(), "b@x"));
        for i in 0..IP_FAILURES {
            l.failed(ip, &format!("u{i}@x"));
        }
        assert!(l.locked(ip, "fresh@x"), "per IP");
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
