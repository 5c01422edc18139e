//! The SMTP server of the three listeners. Protocol only: every decision about
//! senders, recipients and messages is the backend's.
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn, Instrument};

use super::command::{self, Command};
use super::io::{Line, LineIo, MaybeTls};
use super::{Envelope, Limits, Reply, Role, SessionInfo, SmtpBackend};
use crate::listener::{Gate, Refusal, REFUSAL_TIMEOUT};

/// How long in-flight sessions may run on after shutdown before they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

type Stream = MaybeTls<tokio_rustls::server::TlsStream<TcpStream>>;

struct Shared<B> {
    role: Role,
    hostname: String,
    acceptor: TlsAcceptor,
    limits: Limits,
    backend: Arc<B>,
}

/// Wait until shutdown is requested; a dropped sender counts as a request.
async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Accept SMTP sessions on `listener` until `shutdown` turns true (or its sender is
/// dropped). Then stop accepting; sessions get `421 4.3.2` at their next command
/// (a DATA transfer in progress is finished first) and are awaited for up to 30 s.
pub async fn serve<B: SmtpBackend>(
    listener: TcpListener,
    role: Role,
    hostname: String,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    backend: Arc<B>,
    shutdown: watch::Receiver<bool>,
) {
    let shared = Arc::new(Shared {
        role,
        hostname,
        acceptor: crate::tls::acceptor(tls),
        limits,
        backend,
    });
    let limits = &shared.limits;
    let gate = Gate::with(
        limits.max_connections_per_ip,
        limits.max_connections,
        limits.pre_auth_timeout,
    );
    let local = listener.local_addr().ok();
    info!(?role, addr = ?local, "SMTP listener started");
    let busy_tls = shared.acceptor.clone();
    let hostname = shared.hostname.clone();
    crate::listener::accept_loop(
        "smtp",
        listener,
        gate,
        SHUTDOWN_GRACE,
        shutdown.clone(),
        move |tcp, peer| {
            let _ = tcp.set_nodelay(true);
            let span = tracing::info_span!("smtp", %peer, ?role);
            run_session(shared.clone(), tcp, peer, shutdown.clone()).instrument(span)
        },
        move |tcp, _, why| {
            let reply = match why {
                Refusal::Busy => Reply::new(
                    421,
                    "4.3.2",
                    format!("{hostname} Too many connections, try again later"),
                ),
                Refusal::TooManyFromAddress => Reply::new(
                    421,
                    "4.7.0",
                    format!("{hostname} Too many connections from your address, try again later"),
                ),
            };
            let busy_tls = busy_tls.clone();
            async move {
                if role == Role::Submissions {
                    // Implicit TLS: a plaintext reply is useless; over TLS only when
                    // the listener is full (see refuse_over_tls).
                    let line: &'static [u8] =
                        b"421 4.3.2 Too many connections, try again later\r\n";
                    crate::listener::refuse_over_tls(busy_tls, tcp, why, line).await;
                } else {
                    refuse(tcp, reply).await;
                }
            }
        },
    )
    .await;
    info!(?role, "SMTP listener stopped");
}

/// One session over an accepted plain connection, run as [`serve`] runs it until the
/// client closes; `tls_up` makes it behave as if TLS were negotiated (so AUTH and
/// submission are reachable without a handshake). For the fuzz targets (`crate::fuzzing`).
pub(crate) async fn session_on_plain<B: SmtpBackend>(
    tcp: TcpStream,
    peer: SocketAddr,
    role: Role,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    backend: Arc<B>,
    tls_up: bool,
) {
    let shared = Arc::new(Shared {
        role,
        hostname: "fuzz.example".into(),
        acceptor: crate::tls::acceptor(tls),
        limits,
        backend,
    });
    let (_keep, shutdown) = watch::channel(false);
    run_on(shared, MaybeTls::Plain(tcp), tls_up, peer, shutdown).await;
}

async fn refuse(tcp: TcpStream, reply: Reply) {
    let mut io: LineIo<Stream> = LineIo::new(MaybeTls::Plain(tcp), REFUSAL_TIMEOUT);
    io.queue(&reply.to_wire());
    io.close().await;
}

async fn run_session<B: SmtpBackend>(
    shared: Arc<Shared<B>>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    let timeout = shared.limits.idle_timeout;
    let pre_auth = shared.limits.pre_auth_timeout.min(timeout);
    let implicit_tls = shared.role == Role::Submissions;
    let stream = if implicit_tls {
        match tokio::time::timeout(pre_auth, shared.acceptor.accept(tcp)).await {
            Ok(Ok(s)) => MaybeTls::Tls(Box::new(s)),
            Ok(Err(e)) => {
                info!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                info!("TLS handshake timed out");
                return;
            }
        }
    } else {
        MaybeTls::Plain(tcp)
    };
    run_on(shared, stream, implicit_tls, peer, shutdown).await;
}

/// One session on a connected stream: `tls` tells whether TLS is already up.
async fn run_on<B: SmtpBackend>(
    shared: Arc<Shared<B>>,
    stream: Stream,
    tls: bool,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    let pre_auth = shared
        .limits
        .pre_auth_timeout
        .min(shared.limits.idle_timeout);
    let mut session = Session {
        info: SessionInfo {
            role: shared.role,
            peer,
            tls,
            helo: None,
            authenticated: None,
        },
        shared,
        io: LineIo::new(stream, pre_auth),
        esmtp: false,
        tx: None,
        errors: 0,
        commands: 0,
        shutdown,
        line: Vec::new(),
    };
    info!("session started");
    let reason = session.run().await;
    session.io.close().await;
    info!(
        reason,
        user = session.info.authenticated.as_deref().unwrap_or(""),
        "session ended"
    );
}

struct Tx {
    env: Envelope,
    /// A RCPT was tried, accepted or not: tells 503 from 554 at DATA.
    rcpt_attempted: bool,
}

/// The session ends; the reason is logged.
type Close = &'static str;

enum DataResult {
    Message(Vec<u8>),
    TooBig,
    LineTooLong,
}

struct Session<B> {
    shared: Arc<Shared<B>>,
    io: LineIo<Stream>,
    info: SessionInfo,
    /// EHLO rather than HELO.
    esmtp: bool,
    tx: Option<Tx>,
    errors: usize,
    commands: usize,
    shutdown: watch::Receiver<bool>,
    line: Vec<u8>,
}

impl<B: SmtpBackend> Session<B> {
    fn send(&mut self, reply: &Reply) {
        self.io.queue(&reply.to_wire());
    }

    /// A reply the client earned by misbehaving; counts toward max_errors.
    fn error(&mut self, reply: Reply) {
        self.errors += 1;
        self.send(&reply);
    }

    fn reply_421(&mut self, enhanced: &str, text: &str) {
        let r = Reply::new(
            421,
            enhanced,
            format!("{} {text}, closing connection", self.shared.hostname),
        );
        self.send(&r);
    }

    /// Map a failed read to the session's end, telling the client on timeout.
    fn read_failed(&mut self, e: std::io::Error) -> Close {
        if e.kind() == std::io::ErrorKind::TimedOut {
            self.reply_421("4.4.2", "Idle timeout");
            "idle timeout"
        } else {
            debug!(error = %e, "read error");
            "read error"
        }
    }

    async fn run(&mut self) -> Close {
        let greeting = Reply::plain(220, format!("{} ESMTP pecbox", self.shared.hostname));
        self.send(&greeting);
        let limits = self.shared.limits.clone();
        loop {
            if *self.shutdown.borrow() {
                self.reply_421("4.3.2", "Service shutting down");
                return "shutdown";
            }
            let read = if self.io.has_line() {
                self.io.read_line(limits.max_line, &mut self.line).await
            } else {
                if self.io.flush().await.is_err() {
                    return "write error";
                }
                tokio::select! {
                    r = self.io.read_line(limits.max_line, &mut self.line) => r,
                    _ = wait_shutdown(&mut self.shutdown) => {
                        self.reply_421("4.3.2", "Service shutting down");
                        return "shutdown";
                    }
                }
            };
            match read {
                Err(e) => return self.read_failed(e),
                Ok(Line::Eof) => return "client closed",
                Ok(Line::TooLong) => self.error(Reply::new(500, "5.5.6", "Line too long")),
                Ok(Line::Complete) => {
                    self.commands += 1;
                    if self.commands > limits.max_commands {
                        self.reply_421("4.7.0", "Too many commands");
                        return "too many commands";
                    }
                    let parsed = match std::str::from_utf8(&self.line) {
                        Ok(s) if !s.contains(|c: char| c.is_control() && c != '\t') => {
                            command::parse(s)
                        }
                        _ => Err(Reply::new(
                            500,
                            "5.5.2",
                            "Invalid characters in command line",
                        )),
                    };
                    match parsed {
                        Err(r) => self.error(r),
                        Ok(cmd) => {
                            if let Err(reason) = self.handle(cmd).await {
                                return reason;
                            }
                        }
                    }
                }
            }
            if self.errors >= limits.max_errors {
                self.reply_421("4.7.0", "Too many errors");
                return "too many errors";
            }
        }
    }

    async fn handle(&mut self, cmd: Command) -> Result<(), Close> {
        let ok = |t: &str| Reply::new(250, "2.0.0", t);
        match cmd {
            Command::Ehlo(domain) => {
                self.hello(domain, true);
                let r = self.ehlo_reply();
                self.send(&r);
            }
            Command::Helo(domain) => {
                self.hello(domain, false);
                let r = Reply::plain(250, self.shared.hostname.clone());
                self.send(&r);
            }
            Command::StartTls => return self.starttls().await,
            Command::Auth { mechanism, initial } => return self.auth(&mechanism, initial).await,
            Command::Mail { path, size, .. } => self.mail(path, size).await,
            Command::Rcpt { path } => self.rcpt(path).await,
            Command::Data => return self.data().await,
            Command::Rset => {
                self.tx = None;
                self.send(&ok("Ok"));
            }
            Command::Noop => self.send(&ok("Ok")),
            Command::Quit => {
                let r = Reply::new(221, "2.0.0", format!("{} Bye", self.shared.hostname));
                self.send(&r);
                return Err("quit");
            }
            Command::Vrfy(_) => self.send(&Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Expn(_) => self.send(&Reply::new(502, "5.5.1", "EXPN not supported")),
            Command::Help => self.send(&Reply::new(
                214,
                "2.0.0",
                "pecbox: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY QUIT",
            )),
        }
        Ok(())
    }

    fn hello(&mut self, domain: String, esmtp: bool) {
        // RFC 5321 §4.1.4: EHLO/HELO also resets any transaction.
        self.tx = None;
        self.esmtp = esmtp;
        self.info.helo = Some(domain);
    }

    fn submission(&self) -> bool {
        self.info.role != Role::Reception
    }

    fn ehlo_reply(&self) -> Reply {
        let helo = self.info.helo.as_deref().unwrap_or("");
        let mut lines = vec![
            format!(
                "{} Hello {helo} [{}]",
                self.shared.hostname,
                self.info.peer.ip()
            ),
            "PIPELINING".into(),
            format!("SIZE {}", self.shared.limits.max_message_bytes),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if !self.info.tls {
            lines.push("STARTTLS".into());
        }
        if self.submission() && self.info.tls {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        Reply::plain(250, lines.join("\n"))
    }

    async fn starttls(&mut self) -> Result<(), Close> {
        if self.info.tls {
            self.error(Reply::new(503, "5.5.1", "TLS already active"));
            return Ok(());
        }
        if self.info.helo.is_none() {
            self.error(Reply::new(503, "5.5.1", "Send EHLO first"));
            return Ok(());
        }
        self.send(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        if self.io.flush().await.is_err() {
            return Err("write error");
        }
        // Anything pipelined after STARTTLS was sent in clear and must not be
        // executed inside the TLS session (CVE-2011-0411).
        let injected = self.io.discard_buffered();
        if injected > 0 {
            warn!(
                bytes = injected,
                "discarded plaintext pipelined after STARTTLS"
            );
        }
        let MaybeTls::Plain(tcp) = std::mem::replace(&mut self.io.stream, MaybeTls::Gone) else {
            return Err("internal: stream not plain");
        };
        let accept = self.shared.acceptor.accept(tcp);
        match tokio::time::timeout(self.shared.limits.idle_timeout, accept).await {
            Ok(Ok(s)) => self.io.stream = MaybeTls::Tls(Box::new(s)),
            Ok(Err(e)) => {
                info!(error = %e, "STARTTLS handshake failed");
                return Err("TLS handshake failed");
            }
            Err(_) => return Err("TLS handshake timed out"),
        }
        // RFC 3207 §4.2: forget everything learnt before TLS.
        self.info.tls = true;
        self.info.helo = None;
        self.info.authenticated = None;
        self.esmtp = false;
        self.tx = None;
        debug!("STARTTLS done");
        Ok(())
    }

    async fn auth(&mut self, mechanism: &str, initial: Option<String>) -> Result<(), Close> {
        let refusal = if !self.submission() {
            Some(Reply::new(503, "5.5.1", "Authentication not enabled"))
        } else if self.info.helo.is_none() {
            Some(Reply::new(503, "5.5.1", "Send EHLO first"))
        } else if !self.info.tls {
            Some(Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            ))
        } else if self.info.authenticated.is_some() {
            Some(Reply::new(503, "5.5.1", "Already authenticated"))
        } else if self.tx.is_some() {
            Some(Reply::new(
                503,
                "5.5.1",
                "AUTH not allowed during a mail transaction",
            ))
        } else if mechanism != "PLAIN" && mechanism != "LOGIN" {
            Some(Reply::new(
                504,
                "5.5.4",
                "Unrecognized authentication mechanism",
            ))
        } else {
            None
        };
        if let Some(r) = refusal {
            self.error(r);
            return Ok(());
        }
        let creds = if mechanism == "PLAIN" {
            self.auth_plain(initial).await?
        } else {
            self.auth_login(initial).await?
        };
        let (user, password) = match creds {
            Ok(c) => c,
            Err(r) => {
                self.error(r);
                return Ok(());
            }
        };
        match self
            .shared
            .backend
            .authenticate(&self.info, &user, &password)
            .await
        {
            Ok(mailbox) => {
                let mailbox = mailbox.to_lowercase();
                info!(user = %mailbox, mechanism, "authenticated");
                self.info.authenticated = Some(mailbox);
                self.io.timeout = self.shared.limits.idle_timeout;
                self.send(&Reply::new(235, "2.7.0", "Authentication successful"));
            }
            Err(r) => {
                warn!(user = %user, mechanism, reply = %r, "authentication failed");
                self.error(r);
            }
        }
        Ok(())
    }

    /// One line of an AUTH exchange after a `334` challenge, base64-decoded.
    async fn auth_line(&mut self, challenge: &str) -> Result<Result<Vec<u8>, Reply>, Close> {
        self.send(&Reply::plain(334, challenge));
        let max = self.shared.limits.max_line;
        match self.io.read_line(max, &mut self.line).await {
            Err(e) => Err(self.read_failed(e)),
            Ok(Line::Eof) => Err("client closed during AUTH"),
            Ok(Line::TooLong) => Ok(Err(Reply::new(
                500,
                "5.5.6",
                "Authentication exchange line is too long",
            ))),
            Ok(Line::Complete) => {
                let s = String::from_utf8_lossy(&self.line).trim().to_string();
                Ok(decode_response(&s, false))
            }
        }
    }

    async fn auth_plain(
        &mut self,
        initial: Option<String>,
    ) -> Result<Result<(String, String), Reply>, Close> {
        let raw = match initial {
            Some(i) => decode_response(&i, true),
            None => self.auth_line("").await?,
        };
        Ok(raw.and_then(|raw| {
            let malformed = || Reply::new(501, "5.5.2", "Malformed PLAIN credentials");
            let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
            let [authzid, authcid, password] = parts.as_slice() else {
                return Err(malformed());
            };
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| malformed());
            let (authzid, user, password) = (text(authzid)?, text(authcid)?, text(password)?);
            // Acting as another user is not supported.
            if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(&user) {
                return Err(Reply::new(
                    535,
                    "5.7.8",
                    "Authentication credentials invalid",
                ));
            }
            Ok((user, password))
        }))
    }

    async fn auth_login(
        &mut self,
        initial: Option<String>,
    ) -> Result<Result<(String, String), Reply>, Close> {
        let user = match initial {
            Some(i) => decode_response(&i, false),
            None => self.auth_line("VXNlcm5hbWU6").await?,
        };
        let user = match user {
            Ok(u) => u,
            Err(r) => return Ok(Err(r)),
        };
        let password = match self.auth_line("UGFzc3dvcmQ6").await? {
            Ok(p) => p,
            Err(r) => return Ok(Err(r)),
        };
        let malformed = || Reply::new(501, "5.5.2", "Credentials are not UTF-8");
        let (Ok(user), Ok(password)) = (String::from_utf8(user), String::from_utf8(password))
        else {
            return Ok(Err(malformed()));
        };
        Ok(Ok((user, password)))
    }

    async fn mail(&mut self, path: String, size: Option<u64>) {
        let role = self.info.role;
        let refusal = if self.info.helo.is_none() {
            Some(Reply::new(503, "5.5.1", "Send EHLO/HELO first"))
        } else if role == Role::Submission && !self.info.tls {
            Some(Reply::new(
                530,
                "5.7.0",
                "Must issue a STARTTLS command first",
            ))
        } else if self.submission() && self.info.authenticated.is_none() {
            Some(Reply::new(530, "5.7.0", "Authentication required"))
        } else if self.tx.is_some() {
            Some(Reply::new(503, "5.5.1", "Sender already specified"))
        } else if size.is_some_and(|s| s > self.shared.limits.max_message_bytes) {
            Some(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ))
        } else {
            None
        };
        if let Some(r) = refusal {
            self.error(r);
            return;
        }
        match self.shared.backend.mail_from(&self.info, &path, size).await {
            Ok(()) => {
                self.tx = Some(Tx {
                    env: Envelope {
                        mail_from: path,
                        rcpt_to: Vec::new(),
                    },
                    rcpt_attempted: false,
                });
                // A peer on port 25 that has begun a transaction is past the
                // pre-authentication phase (submission: AUTH did it).
                self.io.timeout = self.shared.limits.idle_timeout;
                self.send(&Reply::new(250, "2.1.0", "Ok"));
            }
            Err(r) => {
                info!(from = %path, reply = %r, "sender refused");
                self.send(&r);
            }
        }
    }

    async fn rcpt(&mut self, path: String) {
        let max = self.shared.limits.max_recipients;
        let Some(tx) = self.tx.as_mut() else {
            self.error(Reply::new(503, "5.5.1", "Need MAIL command"));
            return;
        };
        tx.rcpt_attempted = true;
        let reply = if tx.env.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(&path)) {
            Reply::new(250, "2.1.5", "Ok (duplicate recipient)")
        } else if tx.env.rcpt_to.len() >= max {
            Reply::new(452, "4.5.3", "Too many recipients")
        } else {
            match self
                .shared
                .backend
                .rcpt_to(&self.info, &tx.env, &path)
                .await
            {
                Ok(()) => {
                    tx.env.rcpt_to.push(path);
                    Reply::new(250, "2.1.5", "Ok")
                }
                Err(r) => {
                    info!(to = %path, reply = %r, "recipient refused");
                    r
                }
            }
        };
        self.send(&reply);
    }

    async fn data(&mut self) -> Result<(), Close> {
        let refusal = match &self.tx {
            None => Some(Reply::new(503, "5.5.1", "Need MAIL command")),
            Some(tx) if tx.env.rcpt_to.is_empty() && tx.rcpt_attempted => {
                Some(Reply::new(554, "5.5.1", "No valid recipients"))
            }
            Some(tx) if tx.env.rcpt_to.is_empty() => {
                Some(Reply::new(503, "5.5.1", "Need RCPT command"))
            }
            Some(_) => None,
        };
        if let Some(r) = refusal {
            self.error(r);
            return Ok(());
        }
        self.send(&Reply::plain(354, "End data with <CR><LF>.<CR><LF>"));
        let result = self.read_data().await?;
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        let limits = &self.shared.limits;
        let reply = match result {
            DataResult::TooBig => Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ),
            DataResult::LineTooLong => Reply::new(
                554,
                "5.6.0",
                format!(
                    "Message has a line longer than {} bytes",
                    limits.max_data_line
                ),
            ),
            DataResult::Message(message) => {
                let size = message.len();
                let reply = self
                    .shared
                    .backend
                    .data(&self.info, tx.env.clone(), message)
                    .await;
                info!(
                    from = %tx.env.mail_from,
                    rcpts = tx.env.rcpt_to.len(),
                    size,
                    reply = %reply,
                    "message"
                );
                self.send(&reply);
                return Ok(());
            }
        };
        info!(from = %tx.env.mail_from, reply = %reply, "message refused");
        self.send(&reply);
        Ok(())
    }

    /// Read the message up to `.`, undoing dot-stuffing, normalizing line ends to
    /// CRLF. Past a limit the rest is read and dropped so the session stays in sync.
    async fn read_data(&mut self) -> Result<DataResult, Close> {
        let max_bytes = usize::try_from(self.shared.limits.max_message_bytes).unwrap_or(usize::MAX);
        let max_line = self.shared.limits.max_data_line;
        // The trace line goes first, so the message is never copied to prepend it.
        let mut body = self.received_header().into_bytes();
        let max_bytes = max_bytes.saturating_add(body.len());
        let mut too_big = false;
        let mut line_too_long = false;
        loop {
            match self.io.read_line(max_line, &mut self.line).await {
                Err(e) => return Err(self.read_failed(e)),
                Ok(Line::Eof) => return Err("client closed during DATA"),
                Ok(Line::TooLong) => line_too_long = true,
                Ok(Line::Complete) => {
                    let line = self.line.as_slice();
                    if line == b"." {
                        break;
                    }
                    let line = line.strip_prefix(b".").unwrap_or(line);
                    if too_big || line_too_long {
                        continue;
                    }
                    if body.len() + line.len() + 2 > max_bytes {
                        too_big = true;
                        body = Vec::new();
                        continue;
                    }
                    body.extend_from_slice(line);
                    body.extend_from_slice(b"\r\n");
                }
            }
        }
        Ok(if too_big {
            DataResult::TooBig
        } else if line_too_long {
            DataResult::LineTooLong
        } else {
            DataResult::Message(body)
        })
    }

    /// RFC 5321 §4.4 trace line; protocol names per RFC 3848.
    fn received_header(&self) -> String {
        let proto = match (self.esmtp, self.info.tls, self.info.authenticated.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let ip = match self.info.peer.ip() {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("IPv6:{a}"),
        };
        format!(
            "Received: from {} ([{ip}])\r\n\tby {} with {proto};\r\n\t{}\r\n",
            self.info.helo.as_deref().unwrap_or("unknown"),
            self.shared.hostname,
            chrono::Local::now().to_rfc2822()
        )
    }
}

/// Decode an AUTH response. `*` cancels; `=` is the empty initial response
/// (RFC 4954 §4), only allowed as such.
fn decode_response(s: &str, initial: bool) -> Result<Vec<u8>, Reply> {
    if s == "*" {
        return Err(Reply::new(501, "5.0.0", "Authentication cancelled"));
    }
    if initial && s == "=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| Reply::new(501, "5.5.2", "Invalid base64 data"))
}
