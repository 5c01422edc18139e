//! SMTP: one server for the three listeners (RFC 5321, 3207, 4954, 6409) and the client
//! the outbound queue uses. A thin adapter: what to accept is the provider core's
//! decision, reached through [`SmtpBackend`].

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

pub mod client;
pub mod command;
mod io;
pub mod server;

pub use client::{
    resolve_next_hop, send, ClientTimeouts, DnsResolver, RecipientOutcome, SendError,
};
pub use server::serve;

/// Which listener a session arrived on (interface.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `smtp`: punto di ricezione; STARTTLS offered, no AUTH; anyone may send.
    Reception,
    /// `submissions`: punto di accesso over implicit TLS; AUTH required.
    Submissions,
    /// `submission`: punto di accesso; STARTTLS required before AUTH, AUTH required.
    Submission,
}

/// An SMTP reply: code, enhanced status code (RFC 3463) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// e.g. `"5.7.1"`; None for the greeting and EHLO.
    pub enhanced: Option<String>,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced: Some(enhanced.to_string()),
            text: text.into(),
        }
    }

    pub fn ok(text: impl Into<String>) -> Self {
        Self::new(250, "2.0.0", text)
    }

    /// A reply without enhanced status code (greeting, EHLO, 354, 334).
    pub fn plain(code: u16, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced: None,
            text: text.into(),
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The reply as sent on the wire: one line per `\n` of the text, `-` after the
    /// code on all but the last, each line carrying the enhanced code. Control
    /// characters in the text become spaces so a reply can never inject a line.
    pub fn to_wire(&self) -> Vec<u8> {
        let lines: Vec<&str> = self.text.split('\n').collect();
        let mut out = Vec::with_capacity(self.text.len() + 16 * lines.len());
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let mut l = format!("{}{}", self.code, sep);
            if let Some(e) = &self.enhanced {
                l.push_str(e);
                l.push(' ');
            }
            l.extend(line.chars().map(|c| if c.is_control() { ' ' } else { c }));
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = &self.enhanced {
            write!(f, " {e}")?;
        }
        write!(f, " {}", self.text.replace('\n', " / "))
    }
}

/// What the session knows when it asks the backend.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub role: Role,
    pub peer: SocketAddr,
    pub tls: bool,
    pub helo: Option<String>,
    /// The authenticated mailbox (lower case), if any.
    pub authenticated: Option<String>,
}

/// The SMTP envelope of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Reverse path without brackets; empty for the null sender `<>`.
    pub mail_from: String,
    /// Forward paths without brackets, in RCPT order.
    pub rcpt_to: Vec<String>,
}

/// Limits of a listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// SIZE advertised and enforced (bytes of DATA).
    pub max_message_bytes: u64,
    pub max_recipients: usize,
    /// Longest command line accepted (RFC 5321 says 512 with CRLF).
    pub max_line: usize,
    /// Longest text line inside DATA (RFC 5321 says 1000 with CRLF; we allow more).
    pub max_data_line: usize,
    pub idle_timeout: Duration,
    /// Silence allowed before AUTH (submission) or the first MAIL (port 25), TLS
    /// handshake included; `idle_timeout` after.
    pub pre_auth_timeout: Duration,
    /// Commands (or errors) in one session before it is closed.
    pub max_commands: usize,
    pub max_errors: usize,
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 31_457_280,
            max_recipients: 500,
            max_line: 4096,
            max_data_line: 65_536,
            idle_timeout: Duration::from_secs(300),
            pre_auth_timeout: Duration::from_secs(30),
            max_commands: 10_000,
            max_errors: 20,
            max_connections_per_ip: 20,
            max_connections: 500,
        }
    }
}

/// The provider core as the SMTP server sees it. Every method answers with the reply
/// to send; `data` returns a positive reply only once the message is durable.
pub trait SmtpBackend: Send + Sync + 'static {
    /// AUTH PLAIN / LOGIN; returns the mailbox on success.
    fn authenticate(
        &self,
        session: &SessionInfo,
        user: &str,
        password: &str,
    ) -> impl Future<Output = Result<String, Reply>> + Send;

    fn mail_from(
        &self,
        session: &SessionInfo,
        reverse_path: &str,
        size: Option<u64>,
    ) -> impl Future<Output = Result<(), Reply>> + Send;

    fn rcpt_to(
        &self,
        session: &SessionInfo,
        envelope: &Envelope,
        forward_path: &str,
    ) -> impl Future<Output = Result<(), Reply>> + Send;

    fn data(
        &self,
        session: &SessionInfo,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> impl Future<Output = Reply> + Send;
}
