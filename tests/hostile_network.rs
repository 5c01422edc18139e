//! pecbox as an attacker meets it, over real sockets: a flood of silent connections
//! from one address on every listener, silent clients cut at the pre-authentication
//! timeout, login attempts under other spellings of an account, wrong passwords for
//! real and made-up accounts, and a burst of parallel logins from 150 addresses.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use support::*;

const PRE_AUTH_SECS: u64 = 4;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Port {
    Smtp,
    Submission,
    Submissions,
    Imaps,
    Pop3s,
    Panel,
}

struct Box6 {
    pecbox: PecBox,
    net: Arc<Net>,
}

/// How a client reaches the box's six listeners.
struct Net {
    ports: [u16; 6],
    tls: tokio_rustls::TlsConnector,
}

impl std::ops::Deref for Box6 {
    type Target = Net;
    fn deref(&self) -> &Net {
        &self.net
    }
}

impl Box6 {
    fn start(name: &str, limits: &str) -> Self {
        let mut pecbox = PecBox::new(name, "pec.hostile.test", &format!("\n[limits]\n{limits}"));
        pecbox.init();
        let (imaps, panel) = pecbox.enable_imaps_and_panel();
        pecbox.add_mailbox("alice");
        pecbox.start();

        let p = &pecbox.ports;
        let ports = [p.smtp, p.submission, p.submissions, imaps, p.pop3s, panel];
        let net = Arc::new(Net {
            ports,
            tls: tls_connector(&pecbox.ca_path()),
        });
        Self { pecbox, net }
    }
}

impl Net {
    fn port(&self, p: Port) -> u16 {
        self.ports[p as usize]
    }

    /// A TCP connection to `p` from the loopback address `from`.
    async fn connect(&self, p: Port, from: IpAddr) -> std::io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        socket
            .connect(SocketAddr::from(([127, 0, 0, 1], self.port(p))))
            .await
    }

    async fn tls(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        self.tls.connect(name, tcp).await
    }

    /// A real client from `from` is served on `p`: the protocol's greeting (the panel:
    /// an HTTP answer to a GET).
    async fn served(&self, p: Port, from: IpAddr) -> Result<String, String> {
        let tcp = self.connect(p, from).await.map_err(|e| e.to_string())?;
        match p {
            Port::Smtp | Port::Submission => first_line(tcp, None).await,
            Port::Panel => {
                let tls = self.tls(tcp).await.map_err(|e| e.to_string())?;
                first_line(tls, Some(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")).await
            }
            _ => {
                let tls = self.tls(tcp).await.map_err(|e| e.to_string())?;
                first_line(tls, None).await
            }
        }
    }
}

async fn first_line<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    send: Option<&[u8]>,
) -> Result<String, String> {
    if let Some(bytes) = send {
        s.write_all(bytes).await.map_err(|e| e.to_string())?;
    }
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    Ok(line)
}

fn greeting_ok(p: Port, line: &str) -> bool {
    match p {
        Port::Smtp | Port::Submission | Port::Submissions => line.starts_with("220 "),
        Port::Imaps => line.starts_with("* OK"),
        Port::Pop3s => line.starts_with("+OK"),
        Port::Panel => line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.1 303"),
    }
}

const ALL: [Port; 6] = [
    Port::Smtp,
    Port::Submission,
    Port::Submissions,
    Port::Imaps,
    Port::Pop3s,
    Port::Panel,
];

/// Whether the server closed `tcp` within `within` (whatever it said first).
async fn closed_by_server(mut tcp: TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on this process.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < 4096 {
            l.rlim_cur = l.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_silent_connections_from_one_address_shut_no_one_else_out() {
    raise_fd_limit();
    let mut b = Box6::start(
        "Flood PEC",
        "connections_per_address = 20\nconnections = 100",
    );
    let flooder: IpAddr = "127.0.5.5".parse().unwrap();
    let me: IpAddr = "127.0.0.1".parse().unwrap();
    for p in ALL {
        let mut flood = Vec::new();
        for _ in 0..600 {
            flood.push(b.connect(p, flooder).await.expect("connect"));
        }
        let started = Instant::now();
        let line = tokio::time::timeout(Duration::from_secs(5), b.served(p, me))
            .await
            .unwrap_or_else(|_| panic!("{p:?}: not served within 5 s during the flood"))
            .unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert!(greeting_ok(p, &line), "{p:?} answered {line:?}");
        eprintln!("{p:?}: served in {:?} during the flood", started.elapsed());
        // The flood holds its address's share and nothing more: 580 of the 600 are
        // closed at once, 20 stay open (silent, until the pre-authentication timeout).
        let checks: Vec<_> = flood
            .into_iter()
            .map(|tcp| tokio::spawn(closed_by_server(tcp, Duration::from_secs(2))))
            .collect();
        let mut closed = 0;
        for c in checks {
            closed += c.await.unwrap() as usize;
        }
        assert_eq!(closed, 580, "{p:?}: connections closed of the flood");
    }
    assert_eq!(b.pecbox.stop(), Some(0));
}

/// What each protocol says when the listener is full.
fn busy_ok(p: Port, line: &str) -> bool {
    match p {
        Port::Smtp | Port::Submission | Port::Submissions => line.starts_with("421 4.3.2"),
        Port::Imaps => line.starts_with("* BYE [UNAVAILABLE]"),
        Port::Pop3s => line.starts_with("-ERR [SYS/TEMP]"),
        Port::Panel => line.starts_with("HTTP/1.1 503"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_answers_busy_instead_of_hanging() {
    raise_fd_limit();
    let b = Box6::start("Busy PEC", "connections_per_address = 10\nconnections = 15");
    for p in ALL {
        // two addresses hold 15 slots between them: the listener is full
        let mut held = Vec::new();
        for from in ["127.0.5.7", "127.0.5.8"] {
            for _ in 0..10 {
                held.push(b.connect(p, from.parse().unwrap()).await.unwrap());
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let line = tokio::time::timeout(
            Duration::from_secs(5),
            b.served(p, "127.0.0.1".parse().unwrap()),
        )
        .await
        .unwrap_or_else(|_| panic!("{p:?}: a full listener left the client hanging"))
        .unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert!(busy_ok(p, &line), "{p:?} answered {line:?} when full");
        drop(held);
        // the slots come back: served again
        let mut served = false;
        for _ in 0..50 {
            if let Ok(Ok(line)) = tokio::time::timeout(
                Duration::from_secs(5),
                b.served(p, "127.0.0.1".parse().unwrap()),
            )
            .await
            {
                if greeting_ok(p, &line) {
                    served = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(served, "{p:?}: not served again once the others left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_cut_at_the_pre_authentication_timeout() {
    let b = Box6::start(
        "Silence PEC",
        &format!("pre_auth_timeout_secs = {PRE_AUTH_SECS}"),
    );
    let from: IpAddr = "127.0.6.6".parse().unwrap();
    let mut waits = Vec::new();
    for p in ALL {
        let tcp = b.connect(p, from).await.unwrap();
        waits.push(tokio::spawn(async move {
            let started = Instant::now();
            let closed = closed_by_server(tcp, Duration::from_secs(PRE_AUTH_SECS + 6)).await;
            (p, closed, started.elapsed())
        }));
    }
    for w in waits {
        let (p, closed, after) = w.await.unwrap();
        assert!(
            closed,
            "{p:?}: a silent client still connected after {after:?}"
        );
        assert!(
            after >= Duration::from_millis(PRE_AUTH_SECS * 1000 - 500)
                && after <= Duration::from_secs(PRE_AUTH_SECS + 3),
            "{p:?}: cut after {after:?}, configured {PRE_AUTH_SECS} s"
        );
    }
}

/// AUTH PLAIN on the implicit-TLS submission port from `from`.
async fn smtp_login(b: &Net, from: IpAddr, user: &str, password: &str) -> (String, Duration) {
    smtp_auth(b.port(Port::Submissions), &b.tls, from, user, password).await
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_share_one_throttle_and_leak_nothing_by_timing() {
    let b = Box6::start("Login PEC", "address_failures = 1000");
    let alice = "alice@pec.hostile.test";
    let addr = |i: u32| -> IpAddr { format!("127.0.7.{i}").parse().unwrap() };

    // A wrong password costs the same for a real mailbox and for one that does not
    // exist (the right password after each wrong one keeps alice's throttle at zero).
    let (mut real, mut ghost) = (Vec::new(), Vec::new());
    for i in 0..12 {
        let (r, t) = smtp_login(&b, addr(100 + i), alice, "sbagliata").await;
        assert!(r.starts_with("535 5.7.8"), "{r}");
        real.push(t);
        let (r, _) = smtp_login(&b, addr(100 + i), alice, PASSWORD).await;
        assert!(r.starts_with("235"), "{r}");
        let (r, t) = smtp_login(
            &b,
            addr(150 + i),
            &format!("ghost{i}@pec.hostile.test"),
            "x",
        )
        .await;
        assert!(r.starts_with("535 5.7.8"), "{r}");
        ghost.push(t);
    }
    let (real, ghost) = (median(real), median(ghost));
    eprintln!("wrong password: real mailbox {real:?}, no such mailbox {ghost:?} (medians of 12)");
    let ratio = real.as_secs_f64() / ghost.as_secs_f64();
    assert!(
        (1.0 / 3.0..=3.0).contains(&ratio),
        "real {real:?} vs made-up {ghost:?}"
    );

    // Four failures for alice, each from a different address...
    for i in 1..=4 {
        let (r, _) = smtp_login(&b, addr(i), alice, "sbagliata").await;
        assert!(r.starts_with("535"), "{r}");
    }
    // ...slow down her account under any spelling, from a fifth address...
    let (r, slowed) = smtp_login(&b, addr(5), " ALICE@Pec.Hostile.Test ", "sbagliata").await;
    assert!(r.starts_with("535"), "{r}");
    let (_, fresh) = smtp_login(&b, addr(6), "nessuno@pec.hostile.test", "sbagliata").await;
    assert!(
        slowed >= Duration::from_millis(900) && slowed > fresh * 2,
        "a variant spelling skipped alice's throttle: {slowed:?} (another account: {fresh:?})"
    );
    // ...and never lock her out: the right password, spelt another way, gets in.
    let (r, _) = smtp_login(&b, addr(7), "Alice@PEC.hostile.test\t", PASSWORD).await;
    assert!(r.starts_with("235"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_stays_small_and_lets_the_owner_in() {
    raise_fd_limit();
    let burst = Box6::start("Burst PEC", "address_failures = 1000");
    let pid = burst.pecbox.pid().unwrap();
    let b = burst.net.clone();
    let idle = rss(pid);
    let flood: Vec<_> = (0..150u32)
        .map(|i| {
            let b = b.clone();
            let from: IpAddr = format!("127.0.{}.{}", 20 + i / 200, 1 + i % 200)
                .parse()
                .unwrap();
            tokio::spawn(async move {
                smtp_login(&b, from, &format!("user{i}@pec.hostile.test"), "sbagliata").await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let owner = tokio::time::timeout(
        Duration::from_secs(10),
        smtp_login(
            &b,
            "127.0.9.9".parse().unwrap(),
            "alice@pec.hostile.test",
            PASSWORD,
        ),
    )
    .await
    .expect("the owner's login waited more than 10 s behind the flood");
    assert!(owner.0.starts_with("235"), "{}", owner.0);
    for f in flood {
        let (r, _) = f.await.unwrap();
        assert!(r.starts_with("535") || r.starts_with("454"), "{r}");
    }
    let peak = proc_status_bytes(pid, "VmHWM:");
    eprintln!(
        "login flood: idle {} MB, peak {} MB; the owner in {:?}",
        idle >> 20,
        peak >> 20,
        owner.1
    );
    assert!(peak < 256 << 20, "peak RSS {} MB", peak >> 20);
}
