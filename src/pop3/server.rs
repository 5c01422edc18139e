//! The POP3 listener and its sessions.
//!
//! One POP3 session per mailbox at a time: a second login gets `-ERR [IN-USE]`
//! (RFC 1939 §8 exclusive-access lock; RFC 2449 response code). Message numbers refer to
//! the INBOX as it was at login; messages that disappear meanwhile (IMAP, another
//! process) answer `-ERR ... no longer exists`. A connection that ends without QUIT
//! deletes nothing.
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::command::{parse, Command, CommandError};
use super::wire::{read_line, Line, Stuffing};
use crate::provider::auth::LoginError;
use crate::store::{Store, StoreError, INBOX};

/// Checks POP3 logins. The provider core implements it (password hashes, throttling:
/// a failed login is answered only when this returns, so the delay belongs here).
pub trait Pop3Auth: Send + Sync + 'static {
    /// `Ok(mailbox address)` or `Err(reason)`; the reason is logged, not sent.
    fn authenticate(
        &self,
        peer: SocketAddr,
        user: &str,
        password: &str,
    ) -> impl Future<Output = Result<String, LoginError>> + Send;
}

/// Bounds on what one client may cost.
#[derive(Debug, Clone)]
pub struct Pop3Limits {
    /// Inactivity autologout; RFC 1939 §3 wants at least 10 minutes.
    pub idle_timeout: Duration,
    /// Silence allowed before login, TLS handshake included.
    pub pre_auth_timeout: Duration,
    /// Longest command line, CRLF included; longer ones get -ERR and are skipped.
    pub max_line: usize,
    /// Failed PASS commands before the connection is closed.
    pub max_auth_failures: u32,
    /// Commands per connection.
    pub max_commands: u32,
    /// Concurrent connections; more get `-ERR [SYS/TEMP]` (busy).
    pub max_sessions: usize,
    /// Concurrent connections from one address; more are closed at once.
    pub max_sessions_per_address: usize,
    /// How long shutdown waits for sessions to end.
    pub shutdown_grace: Duration,
}

impl Default for Pop3Limits {
    fn default() -> Self {
        Pop3Limits {
            idle_timeout: Duration::from_secs(600),
            pre_auth_timeout: Duration::from_secs(30),
            max_line: 1024,
            max_auth_failures: 3,
            max_commands: 10_000,
            max_sessions: 256,
            max_sessions_per_address: 20,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

const CAPABILITIES: &str = "TOP\r\nUIDL\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n\
    EXPIRE NEVER\r\nIMPLEMENTATION pecbox\r\n.\r\n";

/// Flush early when this much output is pending, even in the middle of a pipeline.
const FLUSH_AT: usize = 64 * 1024;

struct Shared<A> {
    store: Store,
    auth: Arc<A>,
    limits: Pop3Limits,
    /// Mailboxes with a session in TRANSACTION state.
    locked: Locks,
}

/// Accepts POP3S connections until `shutdown` turns true (or its sender is dropped);
/// then stops accepting, tells idle sessions `-ERR [SYS/TEMP]`, and waits for them up to
/// [`Pop3Limits::shutdown_grace`].
pub async fn serve<A: Pop3Auth>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    store: Store,
    auth: Arc<A>,
    limits: Pop3Limits,
    shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let shared = Arc::new(Shared {
        store,
        auth,
        limits,
        locked: Locks::default(),
    });
    let l = &shared.limits;
    let gate = crate::listener::Gate::with(
        l.max_sessions_per_address,
        l.max_sessions,
        l.pre_auth_timeout,
    );
    let grace = l.shutdown_grace;
    let sessions_shutdown = shutdown.clone();
    let busy = acceptor.clone();
    crate::listener::accept_loop(
        "pop3",
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
            let line = b"-ERR [SYS/TEMP] server busy, try again later\r\n";
            crate::listener::refuse_over_tls(busy.clone(), tcp, why, line)
        },
    )
    .await;
}

use crate::listener::stopped;

async fn connection<A: Pop3Auth>(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared<A>>,
    shutdown: watch::Receiver<bool>,
) {
    let limit = shared.limits.pre_auth_timeout;
    let Some(stream) = crate::listener::tls_handshake("pop3", &acceptor, tcp, peer, limit).await
    else {
        return;
    };
    let session = Session {
        shared,
        peer,
        user: None,
        failures: 0,
        maildrop: None,
        sending: None,
    };
    session.run(stream, shutdown).await;
}

/// One session over a stream that needs no handshake, run as a connection's is after
/// TLS, until the client closes. For the fuzz targets (`crate::fuzzing`).
pub(crate) async fn session_on_stream<A: Pop3Auth, S>(
    stream: S,
    peer: SocketAddr,
    store: Store,
    auth: Arc<A>,
    limits: Pop3Limits,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let session = Session {
        shared: Arc::new(Shared {
            store,
            auth,
            limits,
            locked: Locks::default(),
        }),
        peer,
        user: None,
        failures: 0,
        maildrop: None,
        sending: None,
    };
    let (_keep, shutdown) = watch::channel(false);
    session.run(stream, shutdown).await;
}

/// A login's view of the INBOX, taken at login.
struct Maildrop {
    address: String,
    uidvalidity: u32,
    msgs: Vec<Msg>,
    _lock: MailboxLock,
}

struct Msg {
    uid: u32,
    size: u64,
    deleted: bool,
}

type Locks = Arc<Mutex<HashSet<String>>>;

/// What a session holds to keep the mailbox to itself; dropping it releases it.
struct MailboxLock {
    locks: Locks,
    address: String,
}

impl MailboxLock {
    fn acquire(locks: &Locks, address: &str) -> Option<MailboxLock> {
        let fresh = locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(address.to_string());
        fresh.then(|| MailboxLock {
            locks: locks.clone(),
            address: address.to_string(),
        })
    }
}

impl Drop for MailboxLock {
    fn drop(&mut self) {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.address);
    }
}

enum Next {
    Continue,
    Close,
}

struct Session<A> {
    shared: Arc<Shared<A>>,
    peer: SocketAddr,
    /// From USER, waiting for PASS.
    user: Option<String>,
    failures: u32,
    /// Some in TRANSACTION state.
    maildrop: Option<Maildrop>,
    /// A RETR or TOP answer still being written.
    sending: Option<(crate::store::Body, Stuffing)>,
}

fn ok(out: &mut Vec<u8>, text: &str) {
    if text.is_empty() {
        out.extend_from_slice(b"+OK\r\n");
    } else {
        out.extend_from_slice(format!("+OK {text}\r\n").as_bytes());
    }
}

fn err(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(format!("-ERR {text}\r\n").as_bytes());
}

async fn send<W: AsyncWrite + Unpin>(
    w: &mut WriteHalf<W>,
    out: &mut Vec<u8>,
    limit: Duration,
) -> bool {
    let res = timeout(limit, async {
        w.write_all(out).await?;
        w.flush().await
    })
    .await;
    out.clear();
    matches!(res, Ok(Ok(())))
}

/// Runs a store call off the async threads (sled may block, flush does fsync).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("store task failed: {e}")),
    }
}

impl<A: Pop3Auth> Session<A> {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        mut self,
        stream: S,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let limits = self.shared.limits.clone();
        let (r, mut w) = tokio::io::split(stream);
        let mut reader = BufReader::new(r);
        let mut out = Vec::new();
        let mut line = Vec::new();
        let mut commands = 0u32;
        ok(&mut out, "pecbox POP3 ready");
        if !send(&mut w, &mut out, limits.idle_timeout).await {
            return;
        }
        loop {
            let wait = if self.maildrop.is_some() {
                limits.idle_timeout
            } else {
                limits.idle_timeout.min(limits.pre_auth_timeout)
            };
            let read = tokio::select! {
                r = timeout(wait, read_line(&mut reader, limits.max_line, &mut line)) => r,
                _ = stopped(&mut shutdown) => {
                    err(&mut out, "[SYS/TEMP] server shutting down");
                    break;
                }
            };
            let next = match read {
                Err(_) => {
                    err(&mut out, "autologout: idle for too long");
                    break;
                }
                Ok(Err(_)) | Ok(Ok(Line::Eof)) => break,
                Ok(Ok(Line::TooLong)) => {
                    err(&mut out, "line too long");
                    Next::Continue
                }
                Ok(Ok(Line::Complete)) => match parse(&line) {
                    Ok(cmd) => self.handle(cmd, &mut out).await,
                    Err(CommandError::Unknown) => {
                        err(&mut out, "unknown command");
                        Next::Continue
                    }
                    Err(e) => {
                        err(&mut out, &e.to_string());
                        Next::Continue
                    }
                },
            };
            if matches!(next, Next::Close) {
                break;
            }
            while let Some((raw, stuffing)) = self.sending.as_mut() {
                if stuffing.next_chunk(&mut out, raw, FLUSH_AT) {
                    self.sending = None;
                } else if !send(&mut w, &mut out, limits.idle_timeout).await {
                    return;
                }
            }
            commands += 1;
            if commands >= limits.max_commands {
                err(&mut out, "too many commands, closing");
                break;
            }
            // PIPELINING: answer a batch of commands in one write
            if (reader.buffer().is_empty() || out.len() >= FLUSH_AT)
                && !send(&mut w, &mut out, limits.idle_timeout).await
            {
                return;
            }
        }
        if !out.is_empty() {
            send(&mut w, &mut out, limits.idle_timeout).await;
        }
        let _ = timeout(Duration::from_secs(5), w.shutdown()).await;
    }

    async fn handle(&mut self, cmd: Command, out: &mut Vec<u8>) -> Next {
        match cmd {
            Command::Capa => {
                ok(out, "capability list follows");
                out.extend_from_slice(CAPABILITIES.as_bytes());
            }
            Command::Noop => ok(out, ""),
            Command::Quit => return self.quit(out).await,
            Command::Apop => err(out, "APOP not supported, use USER and PASS"),
            Command::Auth => err(out, "AUTH not supported, use USER and PASS"),
            Command::Stls => err(out, "already using TLS"),
            Command::User(name) if self.maildrop.is_none() => {
                ok(out, "send PASS");
                self.user = Some(name);
            }
            Command::Pass(password) if self.maildrop.is_none() => {
                return self.pass(&password, out).await;
            }
            Command::User(_) | Command::Pass(_) => err(out, "already logged in"),
            _ if self.maildrop.is_none() => err(out, "log in first with USER and PASS"),
            other => self.transaction(other, out).await,
        }
        Next::Continue
    }

    async fn pass(&mut self, password: &str, out: &mut Vec<u8>) -> Next {
        let Some(user) = self.user.take() else {
            err(out, "send USER first");
            return Next::Continue;
        };
        let peer = self.peer;
        let address = match self.shared.auth.authenticate(peer, &user, password).await {
            Ok(a) => a.to_ascii_lowercase(),
            Err(reason @ (LoginError::AddressBlocked | LoginError::Temporary(_))) => {
                tracing::info!(%peer, user = %user, "pop3 login not checked: {reason}");
                err(out, "[SYS/TEMP] cannot log in now, try again later");
                return Next::Continue;
            }
            Err(reason) => {
                tracing::info!(%peer, user = %user, "pop3 login failed: {reason}");
                self.failures += 1;
                if self.failures >= self.shared.limits.max_auth_failures {
                    err(
                        out,
                        "[AUTH] authentication failed; too many failures, closing",
                    );
                    return Next::Close;
                }
                err(out, "[AUTH] authentication failed");
                return Next::Continue;
            }
        };
        let Some(lock) = MailboxLock::acquire(&self.shared.locked, &address) else {
            err(out, "[IN-USE] the mailbox has another POP3 session");
            return Next::Continue;
        };
        let store = self.shared.store.clone();
        let addr = address.clone();
        let loaded = blocking(move || {
            let state = store.folder_state(&addr, INBOX)?;
            let msgs = store.list(&addr, INBOX)?;
            Ok((state, msgs))
        })
        .await;
        let (state, metas) = match loaded {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(%peer, mailbox = %address, "pop3: cannot open INBOX: {e}");
                err(out, "[SYS/TEMP] cannot open the mailbox, try later");
                return Next::Continue;
            }
        };
        let md = Maildrop {
            address,
            uidvalidity: state.map_or(0, |s| s.uidvalidity),
            msgs: metas
                .into_iter()
                .map(|m| Msg {
                    uid: m.uid,
                    size: m.size,
                    deleted: false,
                })
                .collect(),
            _lock: lock,
        };
        tracing::info!(%peer, mailbox = %md.address, messages = md.msgs.len(), "pop3 login");
        let (n, size) = md.totals();
        ok(
            out,
            &format!("{} has {n} messages ({size} octets)", md.address),
        );
        self.maildrop = Some(md);
        Next::Continue
    }

    async fn transaction(&mut self, cmd: Command, out: &mut Vec<u8>) {
        let Some(md) = self.maildrop.as_mut() else {
            return;
        };
        match cmd {
            Command::Stat => {
                let (n, size) = md.totals();
                ok(out, &format!("{n} {size}"));
            }
            Command::List(Some(n)) => match md.get(n) {
                Ok(m) => ok(out, &format!("{n} {}", m.size)),
                Err(e) => err(out, &e),
            },
            Command::List(None) => {
                let (n, size) = md.totals();
                ok(out, &format!("{n} messages ({size} octets)"));
                for (i, m) in md.live() {
                    out.extend_from_slice(format!("{i} {}\r\n", m.size).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
            }
            Command::Uidl(Some(n)) => match md.get(n) {
                Ok(m) => ok(out, &format!("{n} {}", md.unique_id(m))),
                Err(e) => err(out, &e),
            },
            Command::Uidl(None) => {
                ok(out, "unique-id listing follows");
                for (i, m) in md.live() {
                    out.extend_from_slice(format!("{i} {}\r\n", md.unique_id(m)).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
            }
            Command::Retr(n) => self.send_message(n, None, out).await,
            Command::Top(n, k) => self.send_message(n, Some(k), out).await,
            Command::Dele(n) => match md.get(n) {
                Ok(_) => {
                    if let Some(m) = md.msg_mut(n) {
                        m.deleted = true;
                    }
                    ok(out, &format!("message {n} deleted"));
                }
                Err(e) => err(out, &e),
            },
            Command::Rset => {
                for m in &mut md.msgs {
                    m.deleted = false;
                }
                let (n, size) = md.totals();
                ok(out, &format!("maildrop has {n} messages ({size} octets)"));
            }
            _ => err(out, "unknown command"),
        }
    }

    async fn send_message(&mut self, n: u32, top: Option<u64>, out: &mut Vec<u8>) {
        let Some(md) = self.maildrop.as_ref() else {
            return;
        };
        let (uid, size) = match md.get(n) {
            Ok(m) => (m.uid, m.size),
            Err(e) => return err(out, &e),
        };
        let store = self.shared.store.clone();
        let addr = md.address.clone();
        match blocking(move || store.fetch(&addr, INBOX, uid)).await {
            Ok(Some(raw)) => {
                match top {
                    None => ok(out, &format!("{size} octets")),
                    Some(_) => ok(out, "top of message follows"),
                }
                // written a piece at a time by the session loop
                self.sending = Some((raw, Stuffing::new(top)));
            }
            Ok(None) => err(out, &format!("message {n} no longer exists")),
            Err(e) => {
                tracing::error!(peer = %self.peer, mailbox = %md.address, "pop3 fetch: {e}");
                err(out, "[SYS/TEMP] cannot read the message, try later");
            }
        }
    }

    /// QUIT: in TRANSACTION state, the UPDATE state removes the marked messages.
    async fn quit(&mut self, out: &mut Vec<u8>) -> Next {
        let Some(md) = self.maildrop.take() else {
            ok(out, "pecbox POP3 signing off");
            return Next::Close;
        };
        let uids: Vec<u32> = md
            .msgs
            .iter()
            .filter(|m| m.deleted)
            .map(|m| m.uid)
            .collect();
        if uids.is_empty() {
            ok(out, "pecbox POP3 signing off");
            return Next::Close;
        }
        let store = self.shared.store.clone();
        let addr = md.address.clone();
        let count = uids.len();
        let removed = blocking(move || {
            for uid in uids {
                store.remove(&addr, INBOX, uid)?;
            }
            store.flush()
        })
        .await;
        match removed {
            Ok(()) => {
                tracing::info!(peer = %self.peer, mailbox = %md.address, count, "pop3 deleted");
                ok(
                    out,
                    &format!("pecbox POP3 signing off ({count} messages deleted)"),
                );
            }
            Err(e) => {
                tracing::error!(peer = %self.peer, mailbox = %md.address, "pop3 update: {e}");
                err(out, "[SYS/TEMP] some deleted messages not removed");
            }
        }
        Next::Close
    }
}

impl Maildrop {
    fn index(n: u32) -> Option<usize> {
        usize::try_from(n.checked_sub(1)?).ok()
    }

    fn get(&self, n: u32) -> Result<&Msg, String> {
        match Self::index(n).and_then(|i| self.msgs.get(i)) {
            None => Err(format!("no such message {n}")),
            Some(m) if m.deleted => Err(format!("message {n} already deleted")),
            Some(m) => Ok(m),
        }
    }

    fn msg_mut(&mut self, n: u32) -> Option<&mut Msg> {
        Self::index(n).and_then(|i| self.msgs.get_mut(i))
    }

    /// (number, message) of the messages not marked deleted.
    fn live(&self) -> impl Iterator<Item = (usize, &Msg)> {
        self.msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.deleted)
            .map(|(i, m)| (i + 1, m))
    }

    fn totals(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, size), (_, m)| (n + 1, size + m.size))
    }

    /// Stable across sessions and unique in the mailbox: a uid is never reused under
    /// the same uidvalidity.
    fn unique_id(&self, m: &Msg) -> String {
        format!("{}.{}", self.uidvalidity, m.uid)
    }
}
