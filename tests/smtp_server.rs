//! The SMTP server and client on real sockets with real TLS: Python's smtplib as an
//! independent client, raw protocol exchanges for the error paths, and the outbound
//! client against the server.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use pecbox::smtp::{
    self, ClientTimeouts, DnsResolver, Envelope, Limits, Reply, Role, SessionInfo, SmtpBackend,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const HOST: &str = "mx.pec.test";
const IO_WAIT: Duration = Duration::from_secs(5);

struct Pki {
    ca_file: PathBuf,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let now = chrono::Utc::now();
        let (nb, na) = (
            now - chrono::Duration::days(1),
            now + chrono::Duration::days(30),
        );
        let ca = pecbox::smime::certs::generate_ca("Test SMTP", nb, na).unwrap();
        let leaf =
            pecbox::smime::certs::generate_tls_cert(&ca, &["localhost".into()], nb, na).unwrap();
        let ca_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("smtp-test-ca-{}.pem", std::process::id()));
        std::fs::write(&ca_file, &ca.cert_pem).unwrap();
        Pki {
            server: pecbox::tls::server_config(&leaf.cert_pem, &leaf.key_pkcs8_pem).unwrap(),
            client: pecbox::tls::client_config(std::slice::from_ref(&ca.cert_pem), false).unwrap(),
            ca_file,
        }
    })
}

type Delivered = (SessionInfo, Envelope, Vec<u8>);

/// Records what it gets. alice@pec.test / "secret" authenticates; recipients whose
/// local part starts with "unknown" are refused with 550 5.1.1.
#[derive(Default)]
struct TestBackend {
    messages: Mutex<Vec<Delivered>>,
}

impl TestBackend {
    fn messages(&self) -> Vec<Delivered> {
        self.messages.lock().unwrap().clone()
    }
}

impl SmtpBackend for TestBackend {
    async fn authenticate(
        &self,
        _session: &SessionInfo,
        user: &str,
        password: &str,
    ) -> Result<String, Reply> {
        if user.eq_ignore_ascii_case("alice@pec.test") && password == "secret" {
            Ok("Alice@pec.test".into())
        } else {
            Err(Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            ))
        }
    }

    async fn mail_from(
        &self,
        _session: &SessionInfo,
        _reverse_path: &str,
        _size: Option<u64>,
    ) -> Result<(), Reply> {
        Ok(())
    }

    async fn rcpt_to(
        &self,
        _session: &SessionInfo,
        _envelope: &Envelope,
        forward_path: &str,
    ) -> Result<(), Reply> {
        if forward_path.starts_with("unknown") {
            Err(Reply::new(550, "5.1.1", "No such mailbox"))
        } else {
            Ok(())
        }
    }

    async fn data(&self, session: &SessionInfo, envelope: Envelope, message: Vec<u8>) -> Reply {
        // A bug somewhere behind the adapter, set off by one client's input.
        assert!(
            !message.windows(9).any(|w| w == b"PANIC-NOW"),
            "the backend panicked"
        );
        self.messages
            .lock()
            .unwrap()
            .push((session.clone(), envelope, message));
        Reply::new(250, "2.0.0", "Queued")
    }
}

struct Server {
    addr: SocketAddr,
    backend: Arc<TestBackend>,
    shutdown: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

async fn start(role: Role, limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = Arc::new(TestBackend::default());
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(smtp::serve(
        listener,
        role,
        HOST.into(),
        pki().server.clone(),
        limits,
        backend.clone(),
        rx,
    ));
    Server {
        addr,
        backend,
        shutdown: tx,
        handle,
    }
}

/// A raw SMTP client over any stream.
struct Conn<S> {
    s: S,
    buf: Vec<u8>,
}

async fn connect(addr: SocketAddr) -> Conn<TcpStream> {
    Conn {
        s: TcpStream::connect(addr).await.unwrap(),
        buf: Vec::new(),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn send(&mut self, data: &str) {
        self.s.write_all(data.as_bytes()).await.unwrap();
    }

    /// The next complete reply (all its lines), or None at EOF.
    async fn try_reply(&mut self) -> Option<String> {
        loop {
            let mut pos = 0;
            while let Some(i) = self.buf[pos..].windows(2).position(|w| w == b"\r\n") {
                let line = &self.buf[pos..pos + i];
                pos += i + 2;
                if line.len() == 3 || line.get(3) == Some(&b' ') {
                    let reply = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                    self.buf.drain(..pos);
                    return Some(reply);
                }
            }
            let mut tmp = [0u8; 4096];
            let n = tokio::time::timeout(IO_WAIT, self.s.read(&mut tmp))
                .await
                .expect("server did not answer in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    async fn reply(&mut self) -> String {
        self.try_reply().await.expect("connection closed")
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    /// True when the server closes the connection (EOF or reset) within IO_WAIT.
    async fn closed(&mut self) -> bool {
        let mut tmp = [0u8; 4096];
        loop {
            match tokio::time::timeout(IO_WAIT, self.s.read(&mut tmp)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }
}

#[track_caller]
fn expect(reply: &str, prefix: &str) {
    assert!(
        reply.starts_with(prefix),
        "expected {prefix:?}, got {reply:?}"
    );
}

impl Conn<TcpStream> {
    /// STARTTLS and the handshake; the buffered plaintext must be empty.
    async fn starttls(mut self) -> Conn<tokio_rustls::client::TlsStream<TcpStream>> {
        expect(&self.cmd("STARTTLS").await, "220 2.0.0");
        assert!(self.buf.is_empty(), "server sent more after 220");
        tls_wrap(self.s).await
    }
}

async fn tls_wrap(tcp: TcpStream) -> Conn<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = pecbox::tls::connector(pki().client.clone());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    Conn {
        s: connector.connect(name, tcp).await.unwrap(),
        buf: Vec::new(),
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn received_then<'a>(message: &'a [u8], proto: &str) -> &'a [u8] {
    let text = String::from_utf8_lossy(message);
    let prefix = "Received: from client.test ([127.0.0.1])\r\n\tby mx.pec.test with ";
    assert!(text.starts_with(prefix), "bad trace header: {text:?}");
    assert!(
        text[prefix.len()..].starts_with(&format!("{proto};\r\n\t")),
        "bad protocol in {text:?}"
    );
    let end = text.find("\r\n").unwrap();
    let end = end + 2 + text[end + 2..].find("\r\n").unwrap();
    let end = end + 2 + text[end + 2..].find("\r\n").unwrap() + 2;
    &message[end..]
}

// ---------------------------------------------------------------- Python smtplib

const PY_MESSAGE: &str = "Subject: test\r\n\r\nline1\n.dotline\r\n..two\r\nend";
const PY_STORED: &[u8] = b"Subject: test\r\n\r\nline1\r\n.dotline\r\n..two\r\nend\r\n";

async fn python(mode: &str, port: u16, user: &str, rcpts: &str) -> String {
    let args: Vec<String> = vec![
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_client.py").into(),
        mode.into(),
        port.to_string(),
        pki().ca_file.display().to_string(),
        user.into(),
        "secret".into(),
        "alice@pec.test".into(),
        rcpts.into(),
    ];
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("python3")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(PY_MESSAGE.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "smtplib failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_submissions_implicit_tls() {
    let srv = start(Role::Submissions, Limits::default()).await;
    let out = python("ssl", srv.addr.port(), "alice@pec.test", "bob@pec.test").await;
    assert_eq!(out.trim(), "refused:");
    let msgs = srv.backend.messages();
    assert_eq!(msgs.len(), 1);
    let (info, env, msg) = &msgs[0];
    assert_eq!(
        env,
        &Envelope {
            mail_from: "alice@pec.test".into(),
            rcpt_to: vec!["bob@pec.test".into()]
        }
    );
    assert!(info.tls);
    assert_eq!(info.authenticated.as_deref(), Some("alice@pec.test"));
    assert_eq!(received_then(msg, "ESMTPSA"), PY_STORED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_submission_starttls() {
    let srv = start(Role::Submission, Limits::default()).await;
    let out = python(
        "starttls",
        srv.addr.port(),
        "alice@pec.test",
        "bob@pec.test,unknown@pec.test,carol@pec.test",
    )
    .await;
    assert_eq!(out.trim(), "refused: unknown@pec.test");
    let msgs = srv.backend.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0].1.rcpt_to,
        vec!["bob@pec.test".to_string(), "carol@pec.test".into()]
    );
    assert_eq!(received_then(&msgs[0].2, "ESMTPSA"), PY_STORED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reception_plain() {
    let srv = start(Role::Reception, Limits::default()).await;
    let out = python("plain", srv.addr.port(), "", "bob@pec.test").await;
    assert_eq!(out.trim(), "refused:");
    let msgs = srv.backend.messages();
    assert_eq!(msgs.len(), 1);
    assert!(!msgs[0].0.tls);
    assert_eq!(msgs[0].0.authenticated, None);
    assert_eq!(received_then(&msgs[0].2, "ESMTP"), PY_STORED);
}

// ---------------------------------------------------------------- raw protocol

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_sequence_and_auth() {
    let srv = start(Role::Submission, Limits::default()).await;
    let mut c = connect(srv.addr).await;
    expect(&c.reply().await, "220 mx.pec.test ESMTP pecbox");
    expect(&c.cmd("MAIL FROM:<alice@pec.test>").await, "503 5.5.1");
    let ehlo = c.cmd("EHLO client.test").await;
    expect(&ehlo, "250-mx.pec.test");
    assert!(ehlo.contains("250 STARTTLS\r\n") && ehlo.contains("ENHANCEDSTATUSCODES"));
    assert!(ehlo.contains("SIZE 31457280") && !ehlo.contains("AUTH"));
    let plain = b64("\0alice@pec.test\0secret");
    expect(&c.cmd(&format!("AUTH PLAIN {plain}")).await, "538 5.7.11");
    expect(
        &c.cmd("MAIL FROM:<alice@pec.test>").await,
        "530 5.7.0 Must issue a STARTTLS",
    );

    let mut c = c.starttls().await;
    expect(&c.cmd("MAIL FROM:<alice@pec.test>").await, "503 5.5.1");
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"));
    expect(&c.cmd("STARTTLS").await, "503 5.5.1");
    expect(
        &c.cmd("MAIL FROM:<alice@pec.test>").await,
        "530 5.7.0 Authentication required",
    );
    expect(&c.cmd("AUTH PLAIN !!!notbase64").await, "501 5.5.2");
    expect(&c.cmd("AUTH CRAM-MD5").await, "504 5.5.4");
    expect(&c.cmd("AUTH PLAIN").await, "334 ");
    expect(&c.cmd("*").await, "501 5.0.0");
    expect(&c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
    expect(&c.cmd(&b64("alice@pec.test")).await, "334 UGFzc3dvcmQ6");
    expect(&c.cmd(&b64("wrong")).await, "535 5.7.8");
    expect(&c.cmd("AUTH PLAIN").await, "334 ");
    expect(&c.cmd(&plain).await, "235 2.7.0");
    expect(&c.cmd(&format!("AUTH PLAIN {plain}")).await, "503 5.5.1");

    expect(&c.cmd("RCPT TO:<bob@pec.test>").await, "503 5.5.1");
    expect(&c.cmd("DATA").await, "503 5.5.1");
    expect(&c.cmd("MAIL FROM:alice@pec.test").await, "501 5.5.4");
    expect(
        &c.cmd("MAIL FROM: <alice@pec.test> BODY=8BITMIME").await,
        "250 2.1.0",
    );
    expect(&c.cmd("MAIL FROM:<alice@pec.test>").await, "503 5.5.1");
    expect(&c.cmd("DATA").await, "503 5.5.1 Need RCPT");
    expect(&c.cmd("RCPT TO:<unknown@pec.test>").await, "550 5.1.1");
    expect(&c.cmd("DATA").await, "554 5.5.1");
    expect(&c.cmd("RSET").await, "250 2.0.0");
    expect(&c.cmd("VRFY bob").await, "252 2.5.0");
    expect(&c.cmd("NOOP").await, "250 2.0.0");
    expect(&c.cmd("QUIT").await, "221 2.0.0");
    assert!(c.closed().await);
    assert!(srv.backend.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reception_errors_and_pipelining() {
    let srv = start(Role::Reception, Limits::default()).await;
    let mut c = connect(srv.addr).await;
    c.reply().await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("PIPELINING") && ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"));
    expect(&c.cmd("XYZZY").await, "500 5.5.2");
    expect(&c.cmd("AUTH PLAIN AGEAYg==").await, "503 5.5.1");
    expect(
        &c.cmd("MAIL FROM:<a@b.test> SIZE=999999999").await,
        "552 5.3.4",
    );
    expect(&c.cmd("MAIL FROM:<a@b.test> FOO=BAR").await, "555 5.5.4");
    expect(
        &c.cmd("MAIL FROM:<@relay.test:a@b.test>").await,
        "250 2.1.0",
    );
    expect(&c.cmd("RSET").await, "250 2.0.0");

    // 501 recipients in one pipelined write: the 501st gets 452 4.5.3.
    let mut batch = String::from("MAIL FROM:<>\r\n");
    for i in 0..501 {
        batch.push_str(&format!("RCPT TO:<r{i}@pec.test>\r\n"));
    }
    c.send(&batch).await;
    expect(&c.reply().await, "250 2.1.0");
    for _ in 0..500 {
        expect(&c.reply().await, "250 2.1.5");
    }
    expect(&c.reply().await, "452 4.5.3");
    c.send("DATA\r\n").await;
    expect(&c.reply().await, "354");
    expect(&c.cmd("hello\r\n.").await, "250 2.0.0");
    let msgs = srv.backend.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].1.mail_from, "");
    assert_eq!(msgs[0].1.rcpt_to.len(), 500);
    assert!(msgs[0].2.ends_with(b"\r\nhello\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_and_lines() {
    let limits = Limits {
        max_message_bytes: 1000,
        max_line: 512,
        max_data_line: 200,
        ..Limits::default()
    };
    let srv = start(Role::Reception, limits).await;
    let mut c = connect(srv.addr).await;
    c.reply().await;
    c.cmd("EHLO client.test").await;
    expect(
        &c.cmd(&format!("NOOP {}", "x".repeat(3000))).await,
        "500 5.5.6",
    );
    expect(&c.cmd("NOOP").await, "250 2.0.0");

    let big = format!("{}\r\n", "y".repeat(100)).repeat(30);
    c.cmd("MAIL FROM:<a@b.test>").await;
    c.cmd("RCPT TO:<bob@pec.test>").await;
    expect(&c.cmd("DATA").await, "354");
    expect(&c.cmd(&format!("{big}.")).await, "552 5.3.4");

    c.cmd("MAIL FROM:<a@b.test>").await;
    c.cmd("RCPT TO:<bob@pec.test>").await;
    expect(&c.cmd("DATA").await, "354");
    let long = "z".repeat(300);
    expect(&c.cmd(&format!("a\r\n{long}\r\nb\r\n.")).await, "554 5.6.0");

    c.cmd("MAIL FROM:<a@b.test>").await;
    c.cmd("RCPT TO:<bob@pec.test>").await;
    expect(&c.cmd("DATA").await, "354");
    expect(&c.cmd("small\n..dot\r\n.").await, "250 2.0.0");
    let msgs = srv.backend.messages();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].2.ends_with(b"\r\nsmall\r\n.dot\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_discards_injected_commands() {
    let srv = start(Role::Reception, Limits::default()).await;
    let mut c = connect(srv.addr).await;
    c.reply().await;
    c.cmd("EHLO client.test").await;
    c.send("STARTTLS\r\nRSET\r\n").await;
    expect(&c.reply().await, "220 2.0.0");
    assert!(c.buf.is_empty());
    let mut t = tls_wrap(c.s).await;
    // Were RSET executed, its 250 would come before the EHLO reply.
    let ehlo = t.cmd("EHLO client.test").await;
    expect(&ehlo, "250-mx.pec.test");
    expect(&t.cmd("NOOP").await, "250 2.0.0");
    expect(&t.cmd("QUIT").await, "221");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_errors_closes() {
    let limits = Limits {
        max_errors: 3,
        ..Limits::default()
    };
    let srv = start(Role::Reception, limits).await;
    let mut c = connect(srv.addr).await;
    c.reply().await;
    c.send("FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n").await;
    for _ in 0..3 {
        expect(&c.reply().await, "500 5.5.2");
    }
    expect(&c.reply().await, "421 4.7.0");
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(800),
        ..Limits::default()
    };
    let srv = start(Role::Reception, limits).await;
    let mut c = connect(srv.addr).await;
    c.reply().await;
    c.send("EHLO client.test\r\nMAIL FROM:<a@b.test>\r\n").await;
    c.reply().await;
    c.reply().await;
    expect(&c.reply().await, "421 4.4.2");
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_during_data() {
    let srv = start(Role::Reception, Limits::default()).await;
    let mut c = connect(srv.addr).await;
    c.reply().await;
    c.send("EHLO client.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@pec.test>\r\nDATA\r\n")
        .await;
    for _ in 0..3 {
        c.reply().await;
    }
    expect(&c.reply().await, "354");
    c.send("Subject: cut\r\n\r\nhalf a messa").await;
    c.s.shutdown().await.unwrap();
    assert!(c.closed().await, "server kept a half-closed session open");
    assert!(srv.backend.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_session_takes_down_nothing_else() {
    let srv = start(Role::Reception, Limits::default()).await;
    let mut other = connect(srv.addr).await;
    other.reply().await;
    expect(&other.cmd("EHLO other.test").await, "250");
    let mut bad = connect(srv.addr).await;
    bad.reply().await;
    bad.cmd("EHLO client.test").await;
    bad.cmd("MAIL FROM:<a@b.test>").await;
    bad.cmd("RCPT TO:<bob@pec.test>").await;
    expect(&bad.cmd("DATA").await, "354");
    bad.send("Subject: x\r\n\r\nPANIC-NOW\r\n.\r\n").await;
    assert!(bad.closed().await, "the panicking session was closed");
    // the session already open goes on, and the listener takes new ones
    expect(&other.cmd("MAIL FROM:<a@b.test>").await, "250");
    expect(&other.cmd("RCPT TO:<bob@pec.test>").await, "250");
    expect(&other.cmd("DATA").await, "354");
    expect(&other.cmd("still here\r\n.").await, "250 2.0.0");
    let mut next = connect(srv.addr).await;
    expect(&next.reply().await, "220");
    expect(&next.cmd("QUIT").await, "221");
    assert_eq!(srv.backend.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_hurt_others() {
    let srv = start(Role::Reception, Limits::default()).await;
    let mut g = connect(srv.addr).await;
    g.reply().await;
    // Deterministic noise: NULs, high bytes, bare CRs, a few newlines, a long run.
    let mut x: u32 = 0x1234_5678;
    let mut noise = Vec::new();
    for _ in 0..200_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        noise.push((x >> 16) as u8);
    }
    let _ = g.s.write_all(&noise).await;
    let _ = g.s.write_all(b"\r\n").await;
    assert!(g.closed().await, "garbage session not closed");

    let mut c = connect(srv.addr).await;
    c.reply().await;
    c.cmd("EHLO client.test").await;
    expect(&c.cmd("MAIL FROM:<a@b.test>").await, "250");
    expect(&c.cmd("RCPT TO:<bob@pec.test>").await, "250");
    expect(&c.cmd("DATA").await, "354");
    expect(&c.cmd("ok\r\n.").await, "250 2.0.0");
    assert_eq!(srv.backend.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_per_ip() {
    let limits = Limits {
        max_connections_per_ip: 2,
        ..Limits::default()
    };
    let srv = start(Role::Reception, limits).await;
    let mut a = connect(srv.addr).await;
    expect(&a.reply().await, "220");
    let mut b = connect(srv.addr).await;
    expect(&b.reply().await, "220");
    let mut c = connect(srv.addr).await;
    expect(&c.reply().await, "421 4.7.0");
    assert!(c.closed().await);
    expect(&a.cmd("QUIT").await, "221");
    assert!(a.closed().await);
    // The slot is freed once the session task ends.
    let mut freed = false;
    for _ in 0..50 {
        let mut d = connect(srv.addr).await;
        if d.reply().await.starts_with("220") {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed);
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_listener_and_sessions() {
    let srv = start(Role::Reception, Limits::default()).await;
    let mut c = connect(srv.addr).await;
    c.reply().await;
    c.cmd("EHLO client.test").await;
    srv.shutdown.send(true).unwrap();
    expect(&c.reply().await, "421 4.3.2");
    assert!(c.closed().await);
    tokio::time::timeout(IO_WAIT, srv.handle)
        .await
        .expect("serve did not return")
        .unwrap();
    assert!(TcpStream::connect(srv.addr).await.is_err());
}

// ---------------------------------------------------------------- client

fn timeouts() -> ClientTimeouts {
    ClientTimeouts {
        connect: IO_WAIT,
        command: IO_WAIT,
        data_block: IO_WAIT,
        data_end: IO_WAIT,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_delivers_over_required_starttls() {
    let srv = start(Role::Reception, Limits::default()).await;
    let env = Envelope {
        mail_from: "alice@pec.test".into(),
        rcpt_to: vec!["bob@pec.test".into(), "unknown@pec.test".into()],
    };
    let message = b"Subject: out\n\n.leading dot\r\nlast line without newline";
    let outcomes = smtp::send(
        srv.addr,
        "localhost",
        "client.test",
        pki().client.clone(),
        true,
        &env,
        message,
        &timeouts(),
    )
    .await
    .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].address, "bob@pec.test");
    let ok = outcomes[0].result.as_ref().unwrap();
    assert_eq!((ok.code, ok.enhanced.as_deref()), (250, Some("2.0.0")));
    let err = outcomes[1].result.as_ref().unwrap_err();
    assert_eq!((err.code, err.enhanced.as_deref()), (550, Some("5.1.1")));
    let msgs = srv.backend.messages();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].0.tls);
    assert_eq!(msgs[0].1.rcpt_to, vec!["bob@pec.test".to_string()]);
    assert_eq!(
        received_then(&msgs[0].2, "ESMTPS"),
        b"Subject: out\r\n\r\n.leading dot\r\nlast line without newline\r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_plaintext_when_tls_required() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut c = Conn { s, buf: Vec::new() };
        c.send("220 fake ESMTP\r\n").await;
        let mut seen = Vec::new();
        loop {
            let mut line = Vec::new();
            loop {
                let mut b = [0u8; 1];
                if c.s.read(&mut b).await.unwrap_or(0) == 0 {
                    return seen;
                }
                if b[0] == b'\n' {
                    break;
                }
                line.push(b[0]);
            }
            let line = String::from_utf8_lossy(&line).trim().to_string();
            let answer = if line.starts_with("EHLO") {
                "250-fake\r\n250 PIPELINING\r\n"
            } else if line == "QUIT" {
                "221 bye\r\n"
            } else {
                "250 ok\r\n"
            };
            seen.push(line);
            c.send(answer).await;
        }
    });
    let env = Envelope {
        mail_from: "alice@pec.test".into(),
        rcpt_to: vec!["bob@other.test".into()],
    };
    let err = smtp::send(
        addr,
        "localhost",
        "client.test",
        pki().client.clone(),
        true,
        &env,
        b"x",
        &timeouts(),
    )
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err}");
    let seen = fake.await.unwrap();
    assert!(
        seen.iter()
            .all(|l| !l.starts_with("MAIL") && !l.starts_with("RCPT")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connection_refused_is_transient() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let env = Envelope {
        mail_from: String::new(),
        rcpt_to: vec!["bob@other.test".into()],
    };
    let err = smtp::send(
        addr,
        "localhost",
        "client.test",
        pki().client.clone(),
        true,
        &env,
        b"x",
        &timeouts(),
    )
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_routes_win() {
    let mut routes = BTreeMap::new();
    routes.insert("pec.other.test".to_string(), "127.0.0.1:2526".to_string());
    routes.insert("pec.third.test".to_string(), "127.0.0.2".to_string());
    let dns = DnsResolver::new();
    let hops = smtp::resolve_next_hop("PEC.Other.test.", &routes, &dns).await;
    assert_eq!(
        hops,
        vec![("127.0.0.1".to_string(), "127.0.0.1:2526".parse().unwrap())]
    );
    let hops = smtp::resolve_next_hop("pec.third.test", &routes, &dns).await;
    assert_eq!(hops[0].1, "127.0.0.2:25".parse().unwrap());
}
