//! The newcomer's first look (interface.md §5, README): `pecbox run` with no
//! configuration creates everything, prints the two passwords and the ports, and works —
//! curl sends alice → bob over 4465 and reads bob's mailbox over POP3S 4995.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the daemon if the test fails half-way, so it never outlives the test.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn first_run_of_the_demo_serves_alice_and_bob() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon(
        support::pecbox()
            .arg("run")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut daemon.0;
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut passwords = std::collections::HashMap::new();
    let mut last = None;
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    for line in stdout.lines().map_while(Result::ok) {
        printed.push(line.clone());
        if let Some(address) = line.strip_prefix("created ").filter(|a| a.contains('@')) {
            last = Some(address.to_string());
        }
        if let Some(p) = line.strip_prefix("password: ") {
            if let Some(a) = last.take() {
                passwords.insert(a, p.to_string());
            }
        }
        if line.starts_with("ready:") || Instant::now() > deadline {
            break;
        }
    }
    let text = printed.join("\n");
    assert!(text.contains("submissions  127.0.0.1:4465"), "{text}");
    assert!(text.contains("pop3s        127.0.0.1:4995"), "{text}");
    let alice_pw = passwords
        .get("alice@pec.localhost")
        .expect("alice's password")
        .clone();
    let bob_pw = passwords
        .get("bob@pec.localhost")
        .expect("bob's password")
        .clone();
    let ca = dir.path().join("pecbox-data/certs/ca.pem");
    assert!(ca.exists());

    let message = dir.path().join("mail.txt");
    std::fs::write(
        &message,
        "From: alice@pec.localhost\r\nTo: bob@pec.localhost\r\nSubject: Benvenuto\r\n\r\nCiao Bob!\r\n",
    )
    .unwrap();
    let send = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--url",
            "smtps://localhost:4465",
        ])
        .args([
            "--mail-from",
            "alice@pec.localhost",
            "--mail-rcpt",
            "bob@pec.localhost",
        ])
        .args(["--user", &format!("alice@pec.localhost:{alice_pw}")])
        .arg("--cacert")
        .arg(&ca)
        .arg("--upload-file")
        .arg(&message)
        .output()
        .unwrap();
    assert!(
        send.status.success(),
        "{}",
        String::from_utf8_lossy(&send.stderr)
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let listing = loop {
        let list = Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--url",
                "pop3s://localhost:4995/",
            ])
            .args(["--user", &format!("bob@pec.localhost:{bob_pw}")])
            .arg("--cacert")
            .arg(&ca)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&list.stdout).into_owned();
        if !text.trim().is_empty() || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(listing.starts_with("1 "), "bob's mailbox: {listing:?}");
    let retr = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--url",
            "pop3s://localhost:4995/1",
        ])
        .args(["--user", &format!("bob@pec.localhost:{bob_pw}")])
        .arg("--cacert")
        .arg(&ca)
        .output()
        .unwrap();
    let busta = String::from_utf8_lossy(&retr.stdout);
    assert!(
        busta.contains("Subject: POSTA CERTIFICATA: Benvenuto"),
        "{busta}"
    );
    assert!(busta.contains("X-Trasporto: posta-certificata"));

    // A second start reuses everything and prints no new password.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let again = support::pecbox()
        .arg("mailbox")
        .arg("list")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&again.stdout);
    assert!(
        list.contains("alice@pec.localhost") && list.contains("bob@pec.localhost"),
        "{list}"
    );
}
