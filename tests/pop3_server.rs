//! POP3S against a real store: Python's poplib for the client's view, a raw TLS client
//! for what a well-behaved client never sends.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{Duration as Days, Utc};
use pecbox::pop3::{serve, Pop3Auth, Pop3Limits};
use pecbox::smime::{generate_ca, generate_tls_cert, GeneratedCert};
use pecbox::store::{Mailbox, OrdinaryMailPolicy, Store, INBOX};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

const USER: &str = "alice@pec.test.example";
const PASSWORD: &str = "correct horse";

const MSG1: &[u8] = b"From: bob@pec.test.example\r\nTo: alice@pec.test.example\r\nSubject: one\r\n\r\nHello Alice\r\n";
const MSG2: &[u8] = b"From: bob@pec.test.example\r\nSubject: dots\r\n\r\nfirst\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n";
const MSG3: &[u8] = b"Subject: long\r\n\r\nbody 1\r\nbody 2\r\nbody 3\r\nbody 4\r\n";

struct Certs {
    ca: GeneratedCert,
    tls: GeneratedCert,
}

fn certs() -> &'static Certs {
    static C: OnceLock<Certs> = OnceLock::new();
    C.get_or_init(|| {
        let nb = Utc::now() - Days::days(1);
        let na = Utc::now() + Days::days(30);
        let ca = generate_ca("Test POP", nb, na).unwrap();
        let tls = generate_tls_cert(&ca, &["localhost".into()], nb, na).unwrap();
        Certs { ca, tls }
    })
}

// The TLS configurations the daemon itself uses.
fn server_tls() -> Arc<rustls::ServerConfig> {
    let c = certs();
    pecbox::tls::server_config(&c.tls.cert_pem, &c.tls.key_pkcs8_pem).unwrap()
}

fn connector() -> tokio_rustls::TlsConnector {
    let ca = certs().ca.cert_pem.clone();
    tokio_rustls::TlsConnector::from(pecbox::tls::client_config(&[ca], false).unwrap())
}

struct FixedPassword;

impl Pop3Auth for FixedPassword {
    async fn authenticate(
        &self,
        _peer: SocketAddr,
        user: &str,
        password: &str,
    ) -> Result<String, pecbox::provider::auth::LoginError> {
        if user.eq_ignore_ascii_case(USER) && password == PASSWORD {
            Ok(USER.to_string())
        } else {
            Err(pecbox::provider::auth::LoginError::Rejected)
        }
    }
}

struct Server {
    addr: SocketAddr,
    store: Store,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start(limits: Pop3Limits) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store
            .add_mailbox(&Mailbox {
                address: USER.into(),
                password_hash: String::new(),
                quota: None,
                disabled: false,
                created: 0,
                ordinary_mail: OrdinaryMailPolicy::Refuse,
            })
            .unwrap();
        for (i, m) in [MSG1, MSG2, MSG3].iter().enumerate() {
            store
                .append(USER, INBOX, m, &[], 1_700_000_000 + i as i64)
                .unwrap();
        }
        store.flush().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &certs().ca.cert_pem).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(serve(
            listener,
            server_tls(),
            store.clone(),
            Arc::new(FixedPassword),
            limits,
            rx,
        ));
        Server {
            addr,
            store,
            stop,
            task,
            dir,
        }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn uids(&self) -> Vec<u32> {
        self.store
            .list(USER, INBOX)
            .unwrap()
            .iter()
            .map(|m| m.uid)
            .collect()
    }

    async fn client(&self) -> Client {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let tls = connector()
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (r, w) = tokio::io::split(tls);
        let mut c = Client {
            r: BufReader::new(r),
            w,
        };
        assert_eq!(c.line().await, "+OK pecbox POP3 ready");
        c
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve ends after shutdown")
            .unwrap();
    }
}

struct Client {
    r: BufReader<ReadHalf<TlsStream<TcpStream>>>,
    w: WriteHalf<TlsStream<TcpStream>>,
}

impl Client {
    async fn send(&mut self, data: &[u8]) {
        self.w.write_all(data).await.unwrap();
        self.w.flush().await.unwrap();
    }

    /// One answer line without CRLF; "" at end of stream.
    async fn line(&mut self) -> String {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), self.r.read_until(b'\n', &mut buf))
            .await
            .expect("server answers in time")
            .ok();
        String::from_utf8_lossy(&buf).trim_end().to_string()
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.line().await
    }

    /// The lines of a multi-line answer up to (without) the `.` line.
    async fn multiline(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.line().await;
            if l == "." || l.is_empty() {
                return out;
            }
            out.push(l);
        }
    }

    async fn login(&mut self) {
        assert!(self.cmd(&format!("USER {USER}")).await.starts_with("+OK"));
        let ok = self.cmd(&format!("PASS {PASSWORD}")).await;
        assert!(ok.starts_with("+OK"), "{ok}");
    }

    /// True when the server closes the connection (EOF, or an error after its close).
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match tokio::time::timeout(Duration::from_secs(10), self.r.read_to_end(&mut rest)).await {
            Ok(_) => rest.is_empty(),
            Err(_) => false,
        }
    }
}

const POPLIB_SCRIPT: &str = r#"
import base64, json, poplib, ssl, sys
port, cafile, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
def login():
    p = poplib.POP3_SSL("localhost", port, context=ctx, timeout=10)
    p.user(user)
    r["pass"] = p.pass_(password).decode()
    return p
def lines(resp):
    return [l.decode() for l in resp[1]]
r = {}
p = poplib.POP3_SSL("localhost", port, context=ctx, timeout=10)
r["welcome"] = p.getwelcome().decode()
r["capa"] = sorted(p.capa().keys())
p.user(user)
r["pass"] = p.pass_(password).decode()
r["stat"] = list(p.stat())
r["list"] = lines(p.list())
r["list2"] = p.list(2).decode()
r["uidl"] = lines(p.uidl())
r["uidl3"] = p.uidl(3).decode()
r["retr"] = [base64.b64encode(b"\r\n".join(p.retr(i)[1]) + b"\r\n").decode() for i in (1, 2, 3)]
r["top"] = lines(p.top(3, 2))
r["top0"] = lines(p.top(2, 0))
p.dele(1)
r["stat_dele"] = list(p.stat())
p.rset()
r["stat_rset"] = list(p.stat())
p.dele(2)
try:
    p.retr(2)
except poplib.error_proto as e:
    r["retr_deleted"] = e.args[0].decode()
try:
    q = login()
except poplib.error_proto as e:
    r["in_use"] = e.args[0].decode()
r["quit"] = p.quit().decode()
p = login()
r["stat_after"] = list(p.stat())
r["uidl_after"] = lines(p.uidl())
p.quit()
p = poplib.POP3_SSL("localhost", port, context=ctx, timeout=10)
p.user(user)
try:
    p.pass_("wrong")
except poplib.error_proto as e:
    r["bad_pass"] = e.args[0].decode()
p.quit()
print(json.dumps(r))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_session() {
    let server = Server::start(Pop3Limits::default()).await;
    let uidvalidity = server
        .store
        .folder_state(USER, INBOX)
        .unwrap()
        .unwrap()
        .uidvalidity;
    let uids = server.uids();
    assert_eq!(uids.len(), 3);
    let args = [
        "-c".to_string(),
        POPLIB_SCRIPT.to_string(),
        server.addr.port().to_string(),
        server.ca_path().display().to_string(),
        USER.to_string(),
        PASSWORD.to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new("python3").args(args).output())
        .await
        .unwrap()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let total = MSG1.len() + MSG2.len() + MSG3.len();
    assert_eq!(r["welcome"], "+OK pecbox POP3 ready");
    for cap in [
        "TOP",
        "UIDL",
        "USER",
        "RESP-CODES",
        "PIPELINING",
        "IMPLEMENTATION",
    ] {
        assert!(strs(&r["capa"]).contains(&cap.to_string()), "{cap}");
    }
    assert!(r["pass"].as_str().unwrap().starts_with("+OK"));
    assert_eq!(r["stat"], serde_json::json!([3, total]));
    assert_eq!(
        strs(&r["list"]),
        vec![
            format!("1 {}", MSG1.len()),
            format!("2 {}", MSG2.len()),
            format!("3 {}", MSG3.len())
        ]
    );
    assert_eq!(r["list2"], format!("+OK 2 {}", MSG2.len()));
    let uidl: Vec<String> = uids
        .iter()
        .enumerate()
        .map(|(i, u)| format!("{} {uidvalidity}.{u}", i + 1))
        .collect();
    assert_eq!(strs(&r["uidl"]), uidl);
    assert_eq!(r["uidl3"], format!("+OK {}", uidl[2]));
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let retr: Vec<Vec<u8>> = strs(&r["retr"])
        .iter()
        .map(|s| b64.decode(s).unwrap())
        .collect();
    assert_eq!(retr, vec![MSG1.to_vec(), MSG2.to_vec(), MSG3.to_vec()]);
    assert_eq!(
        strs(&r["top"]),
        vec!["Subject: long", "", "body 1", "body 2"]
    );
    assert_eq!(
        strs(&r["top0"]),
        vec!["From: bob@pec.test.example", "Subject: dots", ""]
    );
    assert_eq!(
        r["stat_dele"],
        serde_json::json!([2, MSG2.len() + MSG3.len()])
    );
    assert_eq!(r["stat_rset"], serde_json::json!([3, total]));
    assert_eq!(r["retr_deleted"], "-ERR message 2 already deleted");
    assert!(r["in_use"].as_str().unwrap().starts_with("-ERR [IN-USE]"));
    assert!(r["quit"].as_str().unwrap().starts_with("+OK"));
    // message 2 is gone from the store; 1 (deleted, then RSET) stays
    assert_eq!(server.uids(), vec![uids[0], uids[2]]);
    assert_eq!(
        r["stat_after"],
        serde_json::json!([2, MSG1.len() + MSG3.len()])
    );
    assert_eq!(
        strs(&r["uidl_after"]),
        vec![uidl[0].clone(), format!("2 {uidvalidity}.{}", uids[2])]
    );
    assert!(r["bad_pass"].as_str().unwrap().starts_with("-ERR [AUTH]"));
    server.stop().await;
}

#[tokio::test]
async fn bad_commands_and_numbers() {
    let server = Server::start(Pop3Limits::default()).await;
    let mut c = server.client().await;
    assert_eq!(c.cmd("FOO").await, "-ERR unknown command");
    assert_eq!(c.cmd("").await, "-ERR unknown command");
    assert!(c
        .cmd("APOP alice 0123456789abcdef")
        .await
        .starts_with("-ERR"));
    for before_login in [
        "STAT", "LIST", "UIDL", "RETR 1", "TOP 1 1", "DELE 1", "RSET",
    ] {
        assert_eq!(
            c.cmd(before_login).await,
            "-ERR log in first with USER and PASS",
            "{before_login}"
        );
    }
    assert_eq!(c.cmd("PASS secret").await, "-ERR send USER first");
    assert_eq!(c.cmd("NOOP").await, "+OK");
    c.login().await;
    assert_eq!(
        c.cmd(&format!("USER {USER}")).await,
        "-ERR already logged in"
    );
    assert_eq!(c.cmd("RETR 0").await, "-ERR no such message 0");
    assert_eq!(c.cmd("RETR 99").await, "-ERR no such message 99");
    assert_eq!(
        c.cmd("RETR 4294967295").await,
        "-ERR no such message 4294967295"
    );
    assert_eq!(
        c.cmd("RETR 4294967296").await,
        "-ERR invalid message number"
    );
    assert_eq!(c.cmd("RETR -1").await, "-ERR invalid message number");
    assert_eq!(c.cmd("RETR one").await, "-ERR invalid message number");
    assert_eq!(c.cmd("RETR").await, "-ERR expected one message number");
    assert_eq!(c.cmd("TOP 1").await, "-ERR usage: TOP msg lines");
    assert_eq!(
        c.cmd("LIST 1 2").await,
        "-ERR expected at most one message number"
    );
    assert_eq!(
        c.cmd("STAT now").await,
        "-ERR this command takes no arguments"
    );
    assert_eq!(c.cmd("DELE 1").await, "+OK message 1 deleted");
    assert_eq!(c.cmd("DELE 1").await, "-ERR message 1 already deleted");
    assert_eq!(c.cmd("LIST 1").await, "-ERR message 1 already deleted");
    assert_eq!(c.cmd("UIDL 1").await, "-ERR message 1 already deleted");
    assert_eq!(c.cmd("TOP 1 0").await, "-ERR message 1 already deleted");
    assert_eq!(
        c.cmd("LIST").await,
        format!("+OK 2 messages ({} octets)", MSG2.len() + MSG3.len())
    );
    assert_eq!(c.multiline().await.len(), 2);
    // dropped without QUIT: nothing is deleted
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.uids().len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn overlong_lines_and_garbage_resync() {
    let server = Server::start(Pop3Limits::default()).await;
    let mut c = server.client().await;
    let mut long = vec![b'A'; 5000];
    long.extend_from_slice(b"\r\n");
    c.send(&long).await;
    assert_eq!(c.line().await, "-ERR line too long");
    assert_eq!(c.cmd("NOOP").await, "+OK");
    c.send(b"\x00\xff\xfe\x80 \x01\r\n").await;
    assert_eq!(c.line().await, "-ERR unknown command");
    c.send(b"USER \xff\xfe\r\n").await;
    assert_eq!(c.line().await, "-ERR arguments are not UTF-8");
    // a bare LF ends a line too
    c.send(b"NOOP\n").await;
    assert_eq!(c.line().await, "+OK");
    // pipelined: the answers come in order
    c.send(format!("USER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nQUIT\r\n").as_bytes())
        .await;
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.line().await.starts_with("+OK 3 "));
    assert_eq!(c.line().await, "+OK pecbox POP3 signing off");
    assert!(c.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn too_many_auth_failures_close_the_connection() {
    let server = Server::start(Pop3Limits::default()).await;
    let mut c = server.client().await;
    for i in 1..=3 {
        assert!(c.cmd(&format!("USER {USER}")).await.starts_with("+OK"));
        let answer = c.cmd("PASS nope").await;
        assert!(answer.starts_with("-ERR [AUTH]"), "{answer}");
        assert_eq!(answer.contains("closing"), i == 3);
    }
    assert!(c.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn idle_timeout_and_command_limit() {
    let limits = Pop3Limits {
        idle_timeout: Duration::from_millis(300),
        max_commands: 4,
        ..Pop3Limits::default()
    };
    let server = Server::start(limits).await;
    let mut c = server.client().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.line().await, "-ERR autologout: idle for too long");
    assert!(c.closed().await);
    // a line that never ends is no way around the timer
    let mut c = server.client().await;
    c.send(b"NOOP").await;
    assert_eq!(c.line().await, "-ERR autologout: idle for too long");
    let mut c = server.client().await;
    for _ in 0..3 {
        assert_eq!(c.cmd("NOOP").await, "+OK");
    }
    assert_eq!(c.cmd("NOOP").await, "+OK");
    assert_eq!(c.line().await, "-ERR too many commands, closing");
    assert!(c.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn half_closed_and_broken_connections() {
    let server = Server::start(Pop3Limits::default()).await;
    // the client sends a command and closes its side: it still gets the answer
    let mut c = server.client().await;
    c.send(format!("USER {USER}\r\nNOOP").as_bytes()).await;
    c.w.shutdown().await.unwrap();
    assert_eq!(c.line().await, "+OK send PASS");
    assert!(c.closed().await);
    // plain text on the TLS port, and a connection dropped mid-handshake
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"USER alice\r\n").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest))
        .await
        .expect("closed");
    drop(TcpStream::connect(server.addr).await.unwrap());
    // still serving
    let mut c = server.client().await;
    c.login().await;
    assert_eq!(c.cmd("QUIT").await, "+OK pecbox POP3 signing off");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_idle_sessions() {
    let server = Server::start(Pop3Limits::default()).await;
    let mut c = server.client().await;
    c.login().await;
    let addr = server.addr;
    server.stop.send(true).unwrap();
    assert_eq!(c.line().await, "-ERR [SYS/TEMP] server shutting down");
    assert!(c.closed().await);
    tokio::time::timeout(Duration::from_secs(10), server.task)
        .await
        .expect("serve returns")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
