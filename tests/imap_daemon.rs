//! The daemon's imaps listener: logins through the provider core, and IDLE waking up
//! when the punto di consegna delivers a PEC message sent through the punto di accesso.
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

#[test]
fn idle_sees_a_delivery() {
    let check = Command::new("python3")
        .args(["-c", "import imapclient"])
        .status()
        .unwrap();
    if !check.success() {
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "imapclient"])
            .status()
            .unwrap();
        assert!(installed.success(), "pip install imapclient");
    }
    let mut b = PecBox::new("Alfa", "alfa.example", "");
    let imaps = free_port();
    let config = std::fs::read_to_string(b.config_path()).unwrap();
    let config = config.replacen(
        "[listen]\n",
        &format!("[listen]\nimaps = \"127.0.0.1:{imaps}\"\n"),
        1,
    );
    std::fs::write(b.config_path(), config).unwrap();
    b.init();
    let alice = b.add_mailbox("alice");
    let bob = b.add_mailbox("bob");
    b.start();

    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("idling");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/imap_clients.py");
    let client = Command::new("python3")
        .arg(script)
        .args(["daemon", &imaps.to_string()])
        .arg(b.ca_path())
        .args([bob.as_str(), PASSWORD])
        .arg(work.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the client never reached IDLE");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (sent, text) = b.send(&alice, &["--to", &bob, "--subject", "Verbale"]);
    assert!(sent, "{text}");
    let out = client.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        b.log()
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("{r:#}");
    assert!(
        r["wrong_password"]
            .as_str()
            .unwrap()
            .contains("AUTHENTICATIONFAILED"),
        "{}",
        r["wrong_password"]
    );
    let folders = r["folders"].to_string();
    for special in [
        "\\\\Sent",
        "\\\\Drafts",
        "\\\\Trash",
        "\\\\Archive",
        "\\\\Junk",
    ] {
        assert!(folders.contains(special), "{special} in {folders}");
    }
    assert_eq!(r["before"], 0);
    assert!(r["idle"].to_string().contains("EXISTS"), "{}", r["idle"]);
    assert_eq!(r["subtype"].as_str().unwrap().to_lowercase(), "signed");
    let inner = r["inner"].to_string().to_lowercase();
    assert!(inner.contains("application/xml"), "{inner}");
    assert!(inner.contains("message/rfc822"), "{inner}");
    assert_eq!(r["subject"], "POSTA CERTIFICATA: Verbale");
    b.stop();
}
