//! The IMAPS listener, the framing of each connection and its output.
//!
//! Input goes through imap-codec's `Fragmentizer`, which splits lines and literals before
//! any parsing, so a malformed command is skipped whole (its literal bytes are never
//! taken for commands) and no message grows past [`ImapLimits::max_message_bytes`].
//! Synchronizing literals over the limit are refused before the client sends them;
//! a non-synchronizing one (LITERAL+) over the limit ends the connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::encode::Encoder;
use imap_codec::fragmentizer::{DecodeMessageError, FragmentInfo, Fragmentizer};
use imap_codec::imap_types::auth::AuthenticateData;
use imap_codec::imap_types::core::{LiteralMode, Tag, Text};
use imap_codec::imap_types::response::{
    Bye, Code, CommandContinuationRequest, Data, Greeting, GreetingKind, Response, Status,
    StatusBody, StatusKind, Tagged,
};
use imap_codec::{
    AuthenticateDataCodec, CommandCodec, GreetingCodec, IdleDoneCodec, ResponseCodec,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tokio_rustls::TlsAcceptor;

use super::session::{capabilities, Mode, Session};
use crate::listener::Gate;
use crate::provider::auth::LoginError;
use crate::store::Store;

/// Checks IMAP logins. The provider core implements it (password hashes, throttling
/// per IP and account: a failed login is answered only when this returns).
pub trait ImapAuth: Send + Sync + 'static {
    /// `Ok(mailbox address)` or why not (`NO [AUTHENTICATIONFAILED]` for a rejection,
    /// `NO [UNAVAILABLE]` otherwise).
    fn authenticate(
        &self,
        peer: SocketAddr,
        user: &str,
        password: &str,
    ) -> impl Future<Output = Result<String, LoginError>> + Send;
}

/// Bounds on what one client may cost.
#[derive(Debug, Clone)]
pub struct ImapLimits {
    /// Inactivity autologout; RFC 3501 §5.4 wants at least 30 minutes.
    pub idle_timeout: Duration,
    /// The same under IDLE, where clients re-issue the command every 29 minutes at
    /// most (RFC 2177).
    pub idle_command_timeout: Duration,
    /// Silence allowed before login, TLS handshake included.
    pub pre_auth_timeout: Duration,
    /// Longest line of a command (literals apart).
    pub max_line: usize,
    /// Largest literal, so largest APPEND; the configured largest message.
    pub max_message_bytes: u64,
    /// Failed logins before the connection is closed.
    pub max_auth_failures: u32,
    /// Concurrent connections; more get `* BYE` (busy).
    pub max_sessions: usize,
    /// Concurrent connections from one address; more are closed at once.
    pub max_sessions_per_address: usize,
    /// How long shutdown waits for sessions to end.
    pub shutdown_grace: Duration,
}

impl Default for ImapLimits {
    fn default() -> Self {
        ImapLimits {
            idle_timeout: Duration::from_secs(30 * 60),
            idle_command_timeout: Duration::from_secs(60 * 60),
            pre_auth_timeout: Duration::from_secs(30),
            max_line: 64 * 1024,
            max_message_bytes: 30 * 1024 * 1024,
            max_auth_failures: 5,
            max_sessions: 512,
            max_sessions_per_address: 20,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

pub(super) struct Shared<A> {
    pub store: Store,
    pub auth: Arc<A>,
    pub limits: ImapLimits,
}

/// Accepts IMAPS connections until `shutdown` turns true (or its sender is dropped);
/// then stops accepting, says BYE to the sessions and waits for them up to
/// [`ImapLimits::shutdown_grace`].
pub async fn serve<A: ImapAuth>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    store: Store,
    auth: Arc<A>,
    limits: ImapLimits,
    shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let shared = Arc::new(Shared {
        store,
        auth,
        limits,
    });
    let l = &shared.limits;
    let gate = Gate::with(
        l.max_sessions_per_address,
        l.max_sessions,
        l.pre_auth_timeout,
    );
    let grace = l.shutdown_grace;
    let sessions_shutdown = shutdown.clone();
    let busy = acceptor.clone();
    crate::listener::accept_loop(
        "imap",
        listener,
        gate,
        grace,
        shutdown,
        move |tcp, peer| {
            connection(
                tcp,
                peer,
                acceptor.clone(),
                shared.clone(),
                sessions_shutdown.clone(),
            )
        },
        move |tcp, _, why| {
            let line = b"* BYE [UNAVAILABLE] server busy, try again later\r\n";
            crate::listener::refuse_over_tls(busy.clone(), tcp, why, line)
        },
    )
    .await;
}

pub(super) use crate::listener::stopped;

async fn connection<A: ImapAuth>(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared<A>>,
    shutdown: watch::Receiver<bool>,
) {
    let limit = shared.limits.pre_auth_timeout;
    let Some(stream) = crate::listener::tls_handshake("imap", &acceptor, tcp, peer, limit).await
    else {
        return;
    };
    let (r, w) = tokio::io::split(stream);
    let mut out = Out::new(Box::new(w), shared.limits.idle_timeout);
    let mut session = Session::new(shared, peer);
    session.run(r, &mut out, shutdown).await;
    out.close().await;
}

/// One session over a stream that needs no handshake, run as a connection's is after
/// TLS, until the client closes. For the fuzz targets (`crate::fuzzing`).
pub(crate) async fn session_on_stream<A: ImapAuth, S>(
    stream: S,
    peer: SocketAddr,
    store: Store,
    auth: Arc<A>,
    limits: ImapLimits,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let shared = Arc::new(Shared {
        store,
        auth,
        limits,
    });
    let (r, w) = tokio::io::split(stream);
    let mut out = Out::new(Box::new(w), shared.limits.idle_timeout);
    let mut session = Session::new(shared, peer);
    let (_keep, shutdown) = watch::channel(false);
    session.run(r, &mut out, shutdown).await;
    out.close().await;
}

/// Flush early when this much output is pending (big FETCHes).
const FLUSH_AT: usize = 256 * 1024;

/// Responses waiting to be written, and where to.
pub(super) struct Out {
    buf: Vec<u8>,
    /// Written before `buf`: earlier output and large literals, each in one piece.
    queued: Vec<Vec<u8>>,
    w: Box<dyn AsyncWrite + Send + Unpin>,
    write_timeout: Duration,
    pub broken: bool,
}

/// Response text: printable ASCII only, never empty.
fn text(s: &str) -> Text<'static> {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    Text::try_from(clean).unwrap_or_else(|_| Text::try_from("done").expect("valid text"))
}

impl Out {
    fn new(w: Box<dyn AsyncWrite + Send + Unpin>, write_timeout: Duration) -> Self {
        Out {
            buf: Vec::new(),
            queued: Vec::new(),
            w,
            write_timeout,
            broken: false,
        }
    }

    pub fn response(&mut self, r: &Response<'_>) {
        for fragment in ResponseCodec::default().encode(r) {
            match fragment {
                imap_codec::encode::Fragment::Literal { data, .. } if data.len() >= FLUSH_AT => {
                    // a message body: moved, not copied, into what waits to be written
                    self.queued.push(std::mem::take(&mut self.buf));
                    self.queued.push(data);
                }
                imap_codec::encode::Fragment::Line { data }
                | imap_codec::encode::Fragment::Literal { data, .. } => {
                    self.buf.extend_from_slice(&data)
                }
            }
        }
    }

    pub fn data(&mut self, d: Data<'_>) {
        self.response(&Response::Data(d));
    }

    pub fn status(
        &mut self,
        tag: Option<&Tag<'_>>,
        kind: StatusKind,
        code: Option<Code<'_>>,
        message: &str,
    ) {
        let body = StatusBody {
            kind,
            code,
            text: text(message),
        };
        let status = match tag {
            Some(tag) => Status::Tagged(Tagged {
                tag: tag.clone(),
                body,
            }),
            None => Status::Untagged(body),
        };
        self.response(&Response::Status(status));
    }

    pub fn bye(&mut self, code: Option<Code<'_>>, message: &str) {
        self.response(&Response::Status(Status::Bye(Bye {
            code,
            text: text(message),
        })));
    }

    pub fn continuation(&mut self, message: &str) {
        if let Ok(c) = CommandContinuationRequest::basic(None, text(message)) {
            self.response(&Response::CommandContinuationRequest(c));
        }
    }

    pub fn continuation_base64(&mut self, data: &[u8]) {
        self.response(&Response::CommandContinuationRequest(
            CommandContinuationRequest::base64(data),
        ));
    }

    fn greeting(&mut self) {
        let greeting = Greeting {
            kind: GreetingKind::Ok,
            code: Some(Code::Capability(capabilities(false))),
            text: text("pecbox IMAP4rev1 ready"),
        };
        self.buf
            .extend_from_slice(&GreetingCodec::default().encode(&greeting).dump());
    }

    /// Writes what is pending; false (and `broken`) when the client is gone.
    pub async fn flush(&mut self) -> bool {
        if self.broken {
            return false;
        }
        if self.buf.is_empty() && self.queued.is_empty() {
            return true;
        }
        let queued = std::mem::take(&mut self.queued);
        let res = timeout(self.write_timeout, async {
            for chunk in queued {
                self.w.write_all(&chunk).await?;
            }
            self.w.write_all(&self.buf).await?;
            self.w.flush().await
        })
        .await;
        self.buf.clear();
        self.broken = !matches!(res, Ok(Ok(())));
        !self.broken
    }

    pub async fn flush_if_big(&mut self) -> bool {
        if self.buf.len() >= FLUSH_AT || !self.queued.is_empty() {
            return self.flush().await;
        }
        !self.broken
    }

    async fn close(&mut self) {
        self.flush().await;
        let _ = timeout(Duration::from_secs(5), self.w.shutdown()).await;
    }
}

/// What a complete message from the client led to.
pub(super) enum Flow {
    Continue,
    Close,
}

impl<A: ImapAuth> Session<A> {
    pub(super) async fn run<R: AsyncRead + Unpin>(
        &mut self,
        mut r: R,
        out: &mut Out,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let limits = self.shared.limits.clone();
        // A whole command: the largest literal plus room for its command line.
        let frame = limits
            .max_message_bytes
            .saturating_add(limits.max_line as u64)
            .min(u64::from(u32::MAX)) as u32;
        let mut frag = Fragmentizer::new(frame);
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_input = Instant::now();
        // Where the current line began in the current message, and whether a literal
        // is being read: a line growing past max_line ends the connection.
        let mut line_start = 0;
        let mut in_literal = false;
        out.greeting();
        loop {
            while let Some(info) = frag.progress() {
                line_start = info.range().end;
                in_literal = false;
                if let FragmentInfo::Line {
                    start,
                    end,
                    announcement,
                    ..
                } = info
                {
                    if end - start > limits.max_line {
                        frag.poison_message();
                    }
                    if let Some(literal) = announcement {
                        if !self.literal_announced(&mut frag, literal, out) {
                            out.flush().await;
                            return;
                        }
                        in_literal = !frag.message_bytes().is_empty();
                        if !in_literal {
                            // refused and skipped: a new message starts
                            line_start = 0;
                        }
                        continue;
                    }
                }
                if !frag.is_message_complete() {
                    continue;
                }
                line_start = 0;
                if let Flow::Close = self.message(&frag, out).await {
                    out.flush().await;
                    return;
                }
                if out.broken {
                    return;
                }
            }
            if !in_literal
                && frag.message_bytes().len().saturating_sub(line_start) > limits.max_line
            {
                out.bye(None, "command line too long, closing");
                out.flush().await;
                return;
            }
            if !out.flush().await {
                return;
            }
            let wait = if matches!(self.mode, Mode::Idle(_)) {
                limits.idle_command_timeout
            } else if self.address.is_none() {
                limits.idle_timeout.min(limits.pre_auth_timeout)
            } else {
                limits.idle_timeout
            };
            tokio::select! {
                read = r.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        last_input = Instant::now();
                        frag.enqueue_bytes(&buf[..n]);
                    }
                },
                _ = tokio::time::sleep_until(last_input + wait) => {
                    out.bye(None, "autologout: idle for too long");
                    out.flush().await;
                    return;
                }
                event = next_event(&mut self.events) => {
                    self.note_event(event);
                    if matches!(self.mode, Mode::Idle(_)) {
                        self.sync(out, true).await;
                    }
                }
                _ = stopped(&mut shutdown) => {
                    out.bye(None, "server shutting down");
                    out.flush().await;
                    return;
                }
            }
        }
    }

    /// A line announced a literal: agree, refuse, or (non-synchronizing and too big)
    /// give up on the connection (false).
    fn literal_announced(
        &mut self,
        frag: &mut Fragmentizer,
        literal: imap_codec::fragmentizer::LiteralAnnouncement,
        out: &mut Out,
    ) -> bool {
        let too_big = u64::from(literal.length) > self.shared.limits.max_message_bytes;
        let refused = too_big || frag.is_message_poisoned() || !matches!(self.mode, Mode::Command);
        if !refused {
            if literal.mode == LiteralMode::Sync {
                out.continuation("ready for literal data");
            }
            return true;
        }
        let tag = frag
            .decode_tag()
            .map(|t| Tag::unvalidated(t.inner().to_owned()));
        let (code, message) = if too_big {
            (Some(Code::TooBig), "literal too big")
        } else if frag.is_message_poisoned() {
            (None, "command line too long")
        } else {
            (None, "no literal expected here")
        };
        match literal.mode {
            LiteralMode::Sync => {
                // The client waits for "+" and sends nothing more of this command.
                let kind = if too_big {
                    StatusKind::No
                } else {
                    StatusKind::Bad
                };
                out.status(tag.as_ref(), kind, code, message);
                frag.skip_message();
                if !matches!(self.mode, Mode::Command) {
                    self.mode = Mode::Command;
                }
                true
            }
            LiteralMode::NonSync if too_big => {
                // RFC 7888 §4: the data is on its way and will not fit; close.
                out.status(tag.as_ref(), StatusKind::Bad, code, message);
                out.bye(None, "literal too big, closing");
                false
            }
            LiteralMode::NonSync => {
                // Small enough: take the bytes and fail the command when it ends.
                frag.poison_message();
                true
            }
        }
    }

    /// A complete message: a command, AUTHENTICATE data or IDLE's DONE.
    async fn message(&mut self, frag: &Fragmentizer, out: &mut Out) -> Flow {
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::Command => match frag.decode_message(&CommandCodec::default()) {
                Ok(cmd) => self.command(cmd, out).await,
                Err(e) => {
                    let tag = frag.decode_tag();
                    let message = match e {
                        DecodeMessageError::MessageTooLong { .. } => "command too long",
                        DecodeMessageError::MessagePoisoned { .. } => "command line too long",
                        _ => "unknown command or syntax error",
                    };
                    out.status(tag.as_ref(), StatusKind::Bad, None, message);
                    Flow::Continue
                }
            },
            Mode::Authenticate(auth) => {
                let data = match frag.decode_message(&AuthenticateDataCodec::default()) {
                    Ok(AuthenticateData::Continue(data)) => Some(data.declassify().to_vec()),
                    Ok(AuthenticateData::Cancel) => None,
                    Err(_) => {
                        out.status(
                            Some(&auth.tag),
                            StatusKind::Bad,
                            None,
                            "invalid base64, authentication aborted",
                        );
                        return Flow::Continue;
                    }
                };
                match data {
                    Some(data) => self.authenticate_step(auth, data, out).await,
                    None => {
                        out.status(
                            Some(&auth.tag),
                            StatusKind::Bad,
                            None,
                            "authentication cancelled",
                        );
                        Flow::Continue
                    }
                }
            }
            Mode::Idle(tag) => {
                match frag.decode_message(&IdleDoneCodec::default()) {
                    Ok(_) => {
                        self.sync(out, true).await;
                        out.status(Some(&tag), StatusKind::Ok, None, "IDLE terminated");
                    }
                    Err(_) => {
                        out.status(Some(&tag), StatusKind::Bad, None, "expected DONE");
                    }
                }
                Flow::Continue
            }
        }
    }
}

/// The next store event, or never when there is no subscription.
async fn next_event(
    events: &mut Option<tokio::sync::broadcast::Receiver<crate::store::StoreEvent>>,
) -> Result<crate::store::StoreEvent, tokio::sync::broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
