//! The local HTTPS web panel (issue 7): first-run setup wizard, administration, the
//! holder's GestioneMail area and webmail, plus Thunderbird autoconfig.
//!
//! Server-rendered HTML (maud, escaped by construction), no JavaScript, Italian by
//! default with an English switch. `daemon::panel_listener` accepts TLS and hands each
//! connection to [`router`]. Every route resolves its session in `session::layer`, which
//! also enforces CSRF on forms and adds the security headers.

mod account;
mod admin;
mod autoconfig;
mod certs;
pub mod configfile;
mod files;
pub mod log_view;
mod mailview;
pub mod notify;
pub mod prefs;
mod session;
mod setup;
mod ui;
mod upload;
mod webmail;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::provider::{CoreError, Provider};
use crate::store::StoreError;

pub use session::{Ctx, Role};
pub use ui::Lang;

/// A request body as the panel parses it before any handler: an urlencoded form through
/// the CSRF check and [`session::url_pairs`], a multipart one through [`upload::read`]
/// (token `fuzz-token`, files up to 64 KiB). For the fuzz targets (`crate::fuzzing`).
pub(crate) async fn parse_body(content_type: &str, body: Vec<u8>) {
    use axum::extract::{FromRequest, Multipart, Request};
    const CSRF: &str = "fuzz-token";
    let _ = session::url_pairs(&body);
    let Ok(req) = Request::builder()
        .method("POST")
        .uri("/")
        .header(header::CONTENT_TYPE, content_type)
        .body(axum::body::Body::from(body))
    else {
        return;
    };
    if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let ctx = Ctx {
            lang: Lang::It,
            ip: std::net::Ipv4Addr::LOCALHOST.into(),
            sid: None,
            role: Role::Anonymous,
            csrf: CSRF.into(),
            here: "/".into(),
        };
        if let Ok(multipart) = Multipart::from_request(req, &()).await {
            let _ = upload::read(&ctx, multipart, 64 * 1024).await;
        }
    } else {
        let _ = session::check_csrf(req, CSRF).await;
    }
}

/// Largest urlencoded form accepted (everything except uploads).
pub const FORM_LIMIT: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    #[error("not found")]
    NotFound,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("request too large")]
    TooLarge,
    #[error("too many failed attempts; try again later")]
    Locked,
    #[error("login required")]
    LoginRequired,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Internal(String),
}

impl PanelError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Locked => StatusCode::TOO_MANY_REQUESTS,
            Self::LoginRequired => StatusCode::SEE_OTHER,
            Self::Store(StoreError::NoFolder { .. } | StoreError::NoMailbox(_)) => {
                StatusCode::NOT_FOUND
            }
            Self::Store(StoreError::InvalidName(_)) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for PanelError {
    fn into_response(self) -> Response {
        if let Self::LoginRequired = self {
            return Redirect::to("/login").into_response();
        }
        let status = self.status();
        if status.is_server_error() {
            tracing::error!("panel: {self}");
        }
        let detail = match &self {
            // Internal details stay in the log.
            e if status.is_server_error() => {
                let _ = e;
                String::new()
            }
            e => e.to_string(),
        };
        (status, ui::error_page(status, &detail)).into_response()
    }
}

pub type PanelResult<T = Response> = Result<T, PanelError>;

/// The client's address, put in each request's extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// One running panel: the provider it manages and its own state.
pub struct Panel {
    pub provider: Arc<Provider>,
    pub sessions: session::Sessions,
    pub lockout: session::Lockout,
    pub started: Instant,
    pub started_at: DateTime<Utc>,
    /// Signs password-reset links.
    pub reset_key: ring::hmac::Key,
    /// Message summaries by (address, folder uidvalidity, uid): listing a folder parses
    /// each message once.
    summaries: Mutex<HashMap<(String, u32, u32), Arc<mailview::Summary>>>,
}

impl Panel {
    /// The panel over `provider`; creates its folder and secrets below the data folder.
    pub fn new(provider: Arc<Provider>) -> Result<Arc<Self>, PanelError> {
        files::ensure_dirs(&provider.config)?;
        let reset_key = files::reset_secret(&provider.config)?;
        if !files::setup_done(&provider.config) {
            files::setup_code(&provider.config)?;
        }
        Ok(Arc::new(Self {
            provider,
            sessions: session::Sessions::default(),
            lockout: session::Lockout::default(),
            started: Instant::now(),
            started_at: Utc::now(),
            reset_key,
            summaries: Mutex::new(HashMap::new()),
        }))
    }

    pub fn setup_done(&self) -> bool {
        files::setup_done(&self.provider.config)
    }
}

/// The panel of a running daemon: its state, plus the mailboxes the setup wizard left
/// for this start.
pub fn start(provider: &Arc<Provider>) -> Result<Arc<Panel>, PanelError> {
    let panel = Panel::new(provider.clone())?;
    setup::create_pending(provider);
    Ok(panel)
}

/// The setup code to print while setup is not done.
pub fn pending_setup_code(panel: &Panel) -> Option<String> {
    (!panel.setup_done())
        .then(|| files::setup_code(&panel.provider.config).ok())
        .flatten()
}

/// Every route of the panel.
pub fn router(panel: Arc<Panel>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/static/panel.css", get(ui::css))
        .route("/static/logo.svg", get(ui::logo))
        .route("/favicon.ico", get(ui::logo))
        .route("/ca.pem", get(certs::ca_pem))
        .route("/index-entry.ldif", get(certs::own_entry))
        .merge(autoconfig::routes())
        .merge(session::routes())
        .merge(setup::routes())
        .merge(admin::routes())
        .merge(account::routes())
        .merge(webmail::routes(&panel))
        .fallback(|| async { PanelError::NotFound })
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            panel.clone(),
            session::layer,
        ))
        .with_state(panel)
}

async fn home(ctx: Ctx) -> Response {
    match ctx.role {
        Role::Admin => Redirect::to("/admin").into_response(),
        Role::Holder(_) => Redirect::to("/mail").into_response(),
        Role::Setup | Role::Anonymous => Redirect::to("/login").into_response(),
    }
}

/// A download: `filename` must already be safe (see [`safe_filename`]).
pub(crate) fn download(content_type: &'static str, filename: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A file name for Content-Disposition made of safe characters only: never a path.
pub(crate) fn safe_filename(stem: &str, extension: &str) -> String {
    let mut out: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    let trimmed = out.trim_matches('_').to_string();
    out = if trimmed.is_empty() {
        "file".into()
    } else {
        trimmed
    };
    format!("{out}.{extension}")
}

/// A provider over a fresh data folder, for the panel's unit tests.
#[cfg(test)]
pub(crate) fn test_provider(delivery: &str) -> (tempfile::TempDir, Arc<Provider>) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[provider]\nname = \"Alfa PEC\"\ndomains = [\"pec.alfa.test\"]\nhostname = \"localhost\"\n\
         [storage]\ndata_dir = \"{}\"\n[delivery]\n{delivery}\n",
        dir.path().join("data").display()
    );
    let config = crate::config::Config::parse(&text, "test").unwrap();
    crate::provider::identity::init(&config).unwrap();
    let store = crate::store::Store::open(&config.store_dir()).unwrap();
    for name in ["alice", "bob"] {
        let r = crate::provider::admin::execute(
            &store,
            &config,
            crate::provider::admin::AdminRequest::MailboxAdd {
                address: format!("{name}@pec.alfa.test"),
                password: Some("password-di-prova".into()),
                quota: None,
            },
        );
        assert!(r.ok, "{}", r.text);
    }
    let provider = Provider::open(config, store).unwrap();
    (dir, provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_never_paths() {
        assert_eq!(safe_filename("../../etc/passwd", "eml"), "etc_passwd.eml");
        assert_eq!(safe_filename("..", "mbox"), "file.mbox");
        assert_eq!(safe_filename("INBOX", "mbox"), "INBOX.mbox");
        assert_eq!(
            safe_filename("Fattura n. 3/2024", "eml"),
            "Fattura_n__3_2024.eml"
        );
    }
}
