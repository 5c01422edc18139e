//! pecbox IMAPS against Dovecot on the same 10 000 messages: FETCH of all headers and of
//! all bodies, timed by one Python client (`imap_fetch_timing.py`) on both servers.
//!
//! Installs Debian's dovecot-imapd when missing; runs Dovecot from its own configuration
//! in a temporary folder, on 127.0.0.1 only, as `nobody`, and stops it at the end (the
//! system's dovecot service, if any, is left alone).
//! Run: `cargo bench --bench imap_vs_dovecot` (`IMAP_BENCH_MESSAGES=N`, default 10000;
//! `IMAP_BENCH_RUNS=N`, best of, default 3).

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as Days, Utc};
use pecbox::imap::{serve, ImapAuth, ImapLimits};
use pecbox::smime::{generate_ca, generate_tls_cert};
use pecbox::store::{Mailbox, OrdinaryMailPolicy, Store, INBOX};

const USER: &str = "bench@pec.bench.example";
const PASSWORD: &str = "bench-password";

struct Fixed;

impl ImapAuth for Fixed {
    async fn authenticate(
        &self,
        _: SocketAddr,
        user: &str,
        pw: &str,
    ) -> Result<String, pecbox::provider::auth::LoginError> {
        if user == USER && pw == PASSWORD {
            Ok(USER.into())
        } else {
            Err(pecbox::provider::auth::LoginError::Rejected)
        }
    }
}

/// A deterministic, varied message: 1 to 24 KB of text, the usual headers.
fn message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "Return-Path: <sender{s}@pec.other.example>\r\n\
Received: from mx.pec.other.example by pec.bench.example; Tue, 14 Nov 2023 10:{mm:02}:00 +0100\r\n\
From: Mittente {s} <sender{s}@pec.other.example>\r\n\
To: {USER}\r\n\
Subject: POSTA CERTIFICATA: pratica n. {i}\r\n\
Date: Tue, 14 Nov 2023 10:{mm:02}:00 +0100\r\n\
Message-ID: <bench-{i}@pec.other.example>\r\n\
X-Trasporto: posta-certificata\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\n",
        s = i % 97,
        mm = i % 60,
    )
    .into_bytes();
    let lines = 16 + (i * 7919) % 384;
    for l in 0..lines {
        m.extend_from_slice(
            format!("Riga {l} del messaggio {i}: testo di prova per il confronto IMAP.\r\n")
                .as_bytes(),
        );
    }
    m
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn dovecot_binary() -> String {
    for path in ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"] {
        if Path::new(path).exists() {
            return path.into();
        }
    }
    eprintln!("installing dovecot-imapd");
    let install = |update: bool| {
        if update {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        }
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "dovecot-imapd",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    // Keep the package from starting the system's service (policy-rc.d, as in
    // containers): only the private instance below runs, on loopback.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists() && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok();
    if ours {
        let _ = Command::new("chmod").arg("755").arg(policy).status();
    }
    let installed = install(false) || install(true);
    if ours {
        let _ = std::fs::remove_file(policy);
    }
    assert!(installed, "apt-get install dovecot-imapd");
    "/usr/sbin/dovecot".into()
}

/// Starts Dovecot from a configuration of its own; its pid file lives in `run`.
fn start_dovecot(dir: &Path, port: u16, cert: &Path, key: &Path) -> Child {
    let d = dir.display();
    let config = format!(
        "base_dir = {d}/run\n\
state_dir = {d}/state\n\
log_path = {d}/dovecot.log\n\
protocols = imap\n\
listen = 127.0.0.1\n\
ssl = required\n\
ssl_cert = <{cert}\n\
ssl_key = <{key}\n\
mail_location = maildir:{d}/Maildir\n\
first_valid_uid = 1\n\
disable_plaintext_auth = no\n\
auth_mechanisms = plain login\n\
passdb {{\n  driver = static\n  args = password={PASSWORD}\n}}\n\
userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/home\n}}\n\
service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {port}\n    ssl = yes\n  }}\n}}\n",
        cert = cert.display(),
        key = key.display(),
    );
    let path = dir.join("dovecot.conf");
    std::fs::write(&path, config).unwrap();
    for sub in ["run", "state", "home"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let chown = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(dir.join("Maildir"))
        .arg(dir.join("home"))
        .status()
        .unwrap();
    assert!(chown.success());
    // The temporary folder must be reachable by nobody.
    let _ = Command::new("chmod").arg("755").arg(dir).status();
    Command::new(dovecot_binary())
        .arg("-F")
        .arg("-c")
        .arg(&path)
        .spawn()
        .expect("dovecot starts")
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let n: usize = std::env::var("IMAP_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runs: usize = std::env::var("IMAP_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    let nb = Utc::now() - Days::days(1);
    let na = Utc::now() + Days::days(30);
    let ca = generate_ca("Bench IMAP", nb, na).unwrap();
    let tls = generate_tls_cert(&ca, &["localhost".into()], nb, na).unwrap();
    let (cert, key) = (root.join("cert.pem"), root.join("key.pem"));
    std::fs::write(&cert, &tls.cert_pem).unwrap();
    std::fs::write(&key, &tls.key_pkcs8_pem).unwrap();

    // The same messages in a pecbox store and a maildir.
    let t = Instant::now();
    let store = Store::open(&root.join("db")).unwrap();
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
    let cur = root.join("Maildir/cur");
    std::fs::create_dir_all(&cur).unwrap();
    std::fs::create_dir_all(root.join("Maildir/new")).unwrap();
    std::fs::create_dir_all(root.join("Maildir/tmp")).unwrap();
    let mut total = 0;
    for batch in (0..n).collect::<Vec<_>>().chunks(500) {
        let msgs: Vec<Vec<u8>> = batch.iter().map(|i| message(*i)).collect();
        store
            .atomically(|t| {
                for m in &msgs {
                    t.append(USER, INBOX, m, &[], 1_700_000_000)?;
                }
                Ok(())
            })
            .unwrap();
        for (i, m) in batch.iter().zip(&msgs) {
            total += m.len();
            let name = format!("{}.M{i}P1.bench,S={}:2,", 1_700_000_000 + i, m.len());
            std::fs::write(cur.join(name), m).unwrap();
        }
    }
    store.flush().unwrap();
    println!(
        "{n} messages, {:.1} MB, written to both in {:.1} s",
        total as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let pecbox_port = free_port();
    let dovecot_port = free_port();
    let mut dovecot = start_dovecot(root, dovecot_port, &cert, &key);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let server_tls = pecbox::tls::server_config(&tls.cert_pem, &tls.key_pkcs8_pem).unwrap();
    let server = runtime.spawn(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", pecbox_port))
            .await
            .unwrap();
        serve(
            listener,
            server_tls,
            store,
            Arc::new(Fixed),
            ImapLimits::default(),
            stop_rx,
        )
        .await
    });
    wait_for_port(pecbox_port);
    wait_for_port(dovecot_port);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/imap_fetch_timing.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(runs.to_string())
        .arg(format!("pecbox:{pecbox_port}:{USER}:{PASSWORD}"))
        .arg(format!("dovecot:{dovecot_port}:{USER}:{PASSWORD}"))
        .output()
        .expect("python3");

    let _ = stop.send(true);
    let _ = runtime.block_on(server);
    let _ = Command::new("kill").arg(dovecot.id().to_string()).status();
    let _ = dovecot.wait();

    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(root.join("dovecot.log")).unwrap_or_default()
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("best of {runs}, one client, IMAPS on 127.0.0.1:");
    for query in ["headers", "bodies"] {
        let p = &r["pecbox"][query];
        let d = &r["dovecot"][query];
        let (ps, ds) = (
            p["seconds"].as_f64().unwrap(),
            d["seconds"].as_f64().unwrap(),
        );
        println!(
            "FETCH 1:* {query:8} pecbox {ps:7.3} s ({} msgs, {:.1} MB)   dovecot {ds:7.3} s ({} msgs, {:.1} MB)   pecbox/dovecot {:.2}",
            p["messages"],
            p["bytes"].as_f64().unwrap() / 1e6,
            d["messages"],
            d["bytes"].as_f64().unwrap() / 1e6,
            ps / ds
        );
    }
}
