//! The daemon's life with systemd (READY=1 only once listening, STOPPING=1 and exit 0
//! on SIGTERM) and the ordinary-mail forwarding through the smarthost.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::*;

#[test]
fn ready_only_when_listening_and_clean_exit_on_sigterm() {
    let b = PecBox::new("Life PEC", "pec.life.test", "");
    b.init();
    let socket_path = b.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut child = b
        .cmd()
        .arg("run")
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 within a minute");
    assert_eq!(&buf[..n], b"READY=1");
    for port in [
        b.ports.smtp,
        b.ports.submissions,
        b.ports.submission,
        b.ports.pop3s,
    ] {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "port {port} must be bound before READY"
        );
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let n = socket.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(
        !b.dir.path().join("data/control.sock").exists(),
        "control socket removed"
    );
}

/// A minimal SMTP sink: records (rcpts, data) of each transaction.
fn smtp_sink() -> (u16, mpsc::Receiver<(Vec<String>, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                let _ = w.write_all(b"220 sink ESMTP\r\n");
                let mut rcpts = Vec::new();
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    let cmd = line.to_ascii_uppercase();
                    if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        let _ = w.write_all(b"250-sink\r\n250 8BITMIME\r\n");
                    } else if cmd.starts_with("RCPT") {
                        rcpts.push(
                            line[8..]
                                .trim()
                                .trim_matches(|c| c == '<' || c == '>')
                                .to_string(),
                        );
                        let _ = w.write_all(b"250 ok\r\n");
                    } else if cmd.starts_with("DATA") {
                        let _ = w.write_all(b"354 go\r\n");
                        let mut data = String::new();
                        let mut l = String::new();
                        while r.read_line(&mut l).unwrap_or(0) > 0 && l != ".\r\n" {
                            data.push_str(&l);
                            l.clear();
                        }
                        let _ = tx.send((std::mem::take(&mut rcpts), data));
                        let _ = w.write_all(b"250 queued\r\n");
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n");
                        break;
                    } else {
                        let _ = w.write_all(b"250 ok\r\n");
                    }
                    line.clear();
                }
            });
        }
    });
    (port, rx)
}

#[test]
fn ordinary_mail_is_forwarded_through_the_smarthost_when_the_holder_asks() {
    let (sink_port, received) = smtp_sink();
    let mut b = PecBox::new(
        "Fwd PEC",
        "pec.fwd.test",
        &format!("smarthost = \"127.0.0.1:{sink_port}\""),
    );
    b.init();
    let bob = b.add_mailbox("bob");
    b.run_ok(
        &[
            "mailbox",
            "policy",
            &bob,
            "forward:bob.rossi@ordinary.example",
        ],
        None,
    );
    b.start();
    let mut s = TcpStream::connect(("127.0.0.1", b.ports.smtp)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut session = format!(
        "EHLO sender.example\r\nMAIL FROM:<someone@example.org>\r\nRCPT TO:<{bob}>\r\nDATA\r\n"
    );
    session.push_str("From: someone@example.org\r\nTo: bob@pec.fwd.test\r\nSubject: ordinaria\r\nMessage-ID: <f1@example.org>\r\n\r\nciao\r\n.\r\nQUIT\r\n");
    s.write_all(session.as_bytes()).unwrap();
    let mut replies = String::new();
    let _ = s.read_to_string(&mut replies);
    assert!(replies.contains("250 2.0.0"), "{replies}");
    let (rcpts, data) = received
        .recv_timeout(Duration::from_secs(30))
        .expect("forwarded");
    assert_eq!(rcpts, ["bob.rossi@ordinary.example"]);
    assert!(data.contains("Subject: ordinaria"), "{data}");
    // Bob's PEC mailbox holds nothing: forwarded, not delivered.
    assert_eq!(b.count(&bob), 0);
}

#[test]
fn init_is_idempotent_and_completes_a_partial_data_folder() {
    let b = PecBox::new("Init PEC", "pec.init.test", "");
    let first = b.run_ok(&["init"], None);
    assert!(
        first.contains("provider CA")
            && first.contains("signing certificate")
            && first.contains("TLS certificate"),
        "{first}"
    );
    let certs = b.dir.path().join("data/certs");
    let ca_before = std::fs::read(certs.join("ca.key")).unwrap();
    let again = b.run_ok(&["init"], None);
    assert!(again.starts_with("nothing to create"), "{again}");
    // Lose the TLS certificate: init makes a new one under the same CA, keeps the keys.
    std::fs::remove_file(certs.join("tls.pem")).unwrap();
    std::fs::remove_file(certs.join("tls.key")).unwrap();
    let repaired = b.run_ok(&["init"], None);
    assert!(
        repaired.contains("TLS certificate") && !repaired.contains("provider CA"),
        "{repaired}"
    );
    assert_eq!(
        std::fs::read(certs.join("ca.key")).unwrap(),
        ca_before,
        "a key is never overwritten"
    );
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "signing.key", "tls.key"] {
        let mode = std::fs::metadata(certs.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
}
