//! Every way a submission or a delivery can fail has its own answer: an SMTP refusal with
//! an enhanced status code, and where the rules want one, the certified notice.

mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use pecbox::pec::classify::classify;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

fn kinds(messages: &[Vec<u8>]) -> Vec<String> {
    let mut k: Vec<String> = messages
        .iter()
        .map(|m| {
            classify(m)
                .kind()
                .map_or("other".into(), |k| k.code().to_string())
        })
        .collect();
    k.sort();
    k
}

/// One started provider alfa with alice and carol, beta known but not necessarily running.
fn alfa_only(extra: &str) -> (PecBox, PecBox, String) {
    let (mut alfa, beta) = two_providers(extra);
    let alice = alfa.add_mailbox("alice");
    alfa.add_mailbox("carol");
    alfa.start();
    (alfa, beta, alice)
}

fn refused_with_notice(alfa: &PecBox, alice: &str, args: &[&str], reason: &str) {
    let (ok, out) = alfa.send(alice, args);
    assert!(!ok, "must be refused: {out}");
    assert!(out.contains("REFUSED 550"), "{out}");
    let inbox = alfa.fetch(alice);
    let notices: Vec<_> = inbox
        .iter()
        .filter(|m| subject(m).starts_with("AVVISO DI NON ACCETTAZIONE:"))
        .map(|m| classify(m))
        .collect();
    let found = notices.iter().any(|c| {
        c.kind().map(|k| k.code()) == Some("non-accettazione")
            && c.daticert
                .as_ref()
                .and_then(|d| d.errore_esteso.as_deref())
                .is_some_and(|e| e.contains(reason))
    });
    assert!(
        found,
        "no avviso di non accettazione about {reason:?}: {out}"
    );
}

#[test]
fn formal_checks_refuse_with_an_avviso_di_non_accettazione() {
    let (alfa, _beta, alice) = alfa_only("max_recipients = 3\nmax_message_bytes = 200000");
    let carol = "carol@pec.alfa.test";
    refused_with_notice(
        &alfa,
        &alice,
        &["--to", carol, "--bcc-header", "spia@pec.alfa.test"],
        "Bcc",
    );
    refused_with_notice(
        &alfa,
        &alice,
        &["--to", carol, "--header-from", "carol@pec.alfa.test"],
        "diverso dal mittente",
    );
    refused_with_notice(
        &alfa,
        &alice,
        &[
            "--to",
            carol,
            "--rcpt",
            carol,
            "--rcpt",
            "nascosto@pec.alfa.test",
        ],
        "non compare",
    );
    // 120 kB to 2 recipients is over 200 kB: the size × recipients rule.
    refused_with_notice(
        &alfa,
        &alice,
        &[
            "--to",
            carol,
            "--to",
            "bob@pec.beta.test",
            "--attach-bytes",
            "90000",
        ],
        "dimensione",
    );
    // Nothing of these was accepted: carol got nothing.
    assert!(alfa.fetch(carol).is_empty());
}

#[test]
fn smtp_level_refusals() {
    let (alfa, _beta, alice) = alfa_only("max_recipients = 3\nmax_message_bytes = 200000");
    let carol = "carol@pec.alfa.test";
    // MAIL FROM that is not the authenticated mailbox.
    let (ok, out) = alfa.send(
        &alice,
        &["--to", carol, "--mail-from", "carol@pec.alfa.test"],
    );
    assert!(!ok && out.contains("REFUSED 553"), "{out}");
    // A fourth recipient over max_recipients = 3.
    let many = ["a", "b", "c", "d"].map(|l| format!("{l}@pec.alfa.test"));
    let mut args = vec![];
    for a in &many {
        args.extend(["--to", a.as_str()]);
    }
    let (_, out) = alfa.send(&alice, &args);
    assert!(out.contains("452") || out.contains("PARTIAL"), "{out}");
    // Bigger than the SIZE limit.
    let (ok, out) = alfa.send(&alice, &["--to", carol, "--attach-bytes", "300000"]);
    assert!(!ok && out.contains("REFUSED 552"), "{out}");
    // Wrong password.
    let bad = Command::new("python3")
        .arg(clients_py())
        .args(["send", "--port", &alfa.ports.submissions.to_string()])
        .args(["--ca", alfa.ca_path().to_str().unwrap()])
        .args(["--user", &alice, "--password", "sbagliata", "--to", carol])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("REFUSED 535"), "{text}");
}

fn read_reply(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(1) => {
                out.push(byte[0]);
                if out.ends_with(b"\r\n") {
                    let text = String::from_utf8_lossy(&out).into_owned();
                    let last = text
                        .trim_end()
                        .rsplit("\r\n")
                        .next()
                        .unwrap_or("")
                        .to_string();
                    if last.len() >= 4 && last.as_bytes()[3] == b' ' {
                        return text;
                    }
                }
            }
            _ => return String::from_utf8_lossy(&out).into_owned(),
        }
    }
}

#[test]
fn auth_before_starttls_on_submission_is_refused() {
    let (alfa, _beta, _alice) = alfa_only("");
    let mut s = TcpStream::connect(("127.0.0.1", alfa.ports.submission)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(read_reply(&mut s).starts_with("220"));
    s.write_all(b"EHLO client.test\r\n").unwrap();
    let ehlo = read_reply(&mut s);
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(
        !ehlo.contains("AUTH"),
        "AUTH is not offered before TLS: {ehlo}"
    );
    s.write_all(b"AUTH PLAIN AGFsaWNlQHBlYy5hbGZhLnRlc3QAcGFzc3dvcmQ=\r\n")
        .unwrap();
    let reply = read_reply(&mut s);
    assert!(reply.starts_with("538 5.7.11"), "{reply}");
    s.write_all(b"MAIL FROM:<alice@pec.alfa.test>\r\n").unwrap();
    let reply = read_reply(&mut s);
    assert!(reply.starts_with("530"), "{reply}");
}

#[test]
fn unknown_recipient_at_beta_gets_a_mancata_consegna() {
    let (mut alfa, mut beta) = two_providers("");
    let alice = alfa.add_mailbox("alice");
    alfa.start();
    beta.start();
    let (ok, out) = alfa.send(&alice, &["--to", "nessuno@pec.beta.test"]);
    assert!(ok, "{out}");
    let inbox = alfa.wait_for(&alice, 2, WAIT);
    assert_eq!(
        kinds(&inbox),
        ["accettazione", "mancata-consegna"],
        "{}",
        beta.log()
    );
    let notice = inbox
        .iter()
        .find(|m| subject(m).starts_with("AVVISO DI MANCATA CONSEGNA"))
        .unwrap();
    let d = classify(notice).daticert.unwrap();
    assert_eq!(d.errore.as_str(), "no-dest");
    assert_eq!(d.consegna.as_deref(), Some("nessuno@pec.beta.test"));
    assert!(d.errore_esteso.unwrap().starts_with("5.1.1"));
}

#[test]
fn beta_down_brings_the_12h_and_24h_notices() {
    // Short durations: 12 h → 2 s, 24 h → 5 s.
    let (alfa, _beta, alice) = alfa_only(
        "preavviso_secs = 2\ntimeout_secs = 5\nqueue_lifetime_secs = 5\nretry_secs = 1\nretry_max_secs = 1",
    );
    let (ok, out) = alfa.send(&alice, &["--to", "bob@pec.beta.test"]);
    assert!(ok, "{out}");
    let inbox = alfa.wait_for(&alice, 3, WAIT);
    let k = kinds(&inbox);
    assert!(
        k.contains(&"timeout-12h".to_string()),
        "{k:?}\n{}",
        alfa.log()
    );
    assert!(k.contains(&"timeout-24h".to_string()), "{k:?}");
    for m in &inbox {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.eml");
        std::fs::write(&f, m).unwrap();
        assert!(common::openssl_verify(&f, &alfa.ca_path()).ok);
    }
    // Exactly one of each, however long we wait, and no second notice when the queue
    // gives up at the same 24 h mark.
    std::thread::sleep(Duration::from_secs(3));
    let k = kinds(&alfa.fetch(&alice));
    assert_eq!(k, ["accettazione", "timeout-12h", "timeout-24h"], "{k:?}");
}

/// Sends raw bytes to `port` over SMTP with STARTTLS, as another server would.
fn smtp_relay(
    port: u16,
    ca: &std::path::Path,
    mail_from: &str,
    rcpt: &str,
    message: &[u8],
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, message).unwrap();
    let script = r#"
import smtplib, ssl, sys
port, ca, mail_from, rcpt, path = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
s = smtplib.SMTP("localhost", int(port), timeout=30)
s.starttls(context=ctx)
try:
    s.sendmail(mail_from, [rcpt], open(path, "rb").read())
    print("ACCEPTED")
except smtplib.SMTPResponseException as e:
    print("REFUSED", e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPRecipientsRefused as e:
    print("REFUSED", e.recipients)
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &port.to_string(),
            ca.to_str().unwrap(),
            mail_from,
            rcpt,
        ])
        .arg(&file)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn forged_or_unknown_signatures_arrive_as_anomalia_and_ordinary_mail_follows_the_policy() {
    let (alfa, mut beta) = two_providers("");
    let bob = beta.add_mailbox("bob");
    beta.start();
    let provider = common::TestProvider::new("Gamma PEC", "pec.gamma.test");

    // A busta from a provider beta's index does not know.
    let busta = provider.sign(&common::build(
        pecbox::pec::kind::MessageKind::BustaTrasporto,
        &provider.gestore,
    ));
    let busta = String::from_utf8_lossy(&busta)
        .replace("bob@pec.other", &bob)
        .into_bytes();
    let out = smtp_relay(
        beta.ports.smtp,
        &beta.ca_path(),
        "alice@pec.gamma.test",
        &bob,
        &busta,
    );
    assert!(out.contains("ACCEPTED"), "{out}");

    // A busta signed with alfa's own key (alfa is in beta's index), one byte changed.
    let certs = alfa.dir.path().join("data/certs");
    let alfa_signer = pecbox::smime::Signer::from_pem(
        &std::fs::read_to_string(certs.join("signing.pem")).unwrap(),
        &std::fs::read_to_string(certs.join("signing.key")).unwrap(),
    )
    .unwrap();
    let gestore = pecbox::pec::messages::Gestore {
        name: "Alfa PEC".into(),
        service_address: "posta-certificata@pec.alfa.test".into(),
    };
    let unsigned = common::build(pecbox::pec::kind::MessageKind::BustaTrasporto, &gestore);
    let mut forged = pecbox::smime::build_signed_message(
        &alfa_signer,
        &unsigned.header_block(),
        &unsigned.entity,
        unsigned.date.utc(),
    )
    .unwrap();
    // Inside the signed postacert.eml.
    let at = forged
        .windows(11)
        .position(|w| w == b"In allegato")
        .unwrap();
    forged[at] = b'X';
    let out = smtp_relay(
        beta.ports.smtp,
        &beta.ca_path(),
        "alice@pec.alfa.test",
        &bob,
        &forged,
    );
    assert!(out.contains("ACCEPTED"), "{out}");

    let inbox = beta.wait_for(&bob, 2, WAIT);
    assert_eq!(
        kinds(&inbox),
        ["busta-anomalia", "busta-anomalia"],
        "{}",
        beta.log()
    );
    for m in &inbox {
        assert!(
            subject(m).starts_with("ANOMALIA MESSAGGIO: "),
            "{}",
            subject(m)
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.eml");
        std::fs::write(&f, m).unwrap();
        assert!(
            common::openssl_verify(&f, &beta.ca_path()).ok,
            "beta signs the anomalia"
        );
    }

    // Ordinary mail: refused by default …
    let ordinary = format!("From: someone@example.org\r\nTo: {bob}\r\nSubject: ciao\r\nMessage-ID: <o1@example.org>\r\n\r\nciao\r\n");
    let out = smtp_relay(
        beta.ports.smtp,
        &beta.ca_path(),
        "someone@example.org",
        &bob,
        ordinary.as_bytes(),
    );
    assert!(out.contains("REFUSED 550"), "{out}");
    // … accepted as anomalia once bob opts in.
    beta.run_ok(&["mailbox", "policy", &bob, "anomalia"], None);
    let out = smtp_relay(
        beta.ports.smtp,
        &beta.ca_path(),
        "someone@example.org",
        &bob,
        ordinary.as_bytes(),
    );
    assert!(out.contains("ACCEPTED"), "{out}");
    let inbox = beta.wait_for(&bob, 3, WAIT);
    assert_eq!(inbox.len(), 3);
    // Relaying for other domains is refused.
    let out = smtp_relay(
        beta.ports.smtp,
        &beta.ca_path(),
        "someone@example.org",
        "x@example.net",
        ordinary.as_bytes(),
    );
    assert!(out.contains("REFUSED"), "{out}");
    drop(alfa);
}

#[test]
fn garbage_and_half_closed_sessions_do_not_hurt() {
    let (alfa, _beta, alice) = alfa_only("");
    for port in [
        alfa.ports.smtp,
        alfa.ports.submission,
        alfa.ports.submissions,
        alfa.ports.pop3s,
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let _ = s.write_all(&garbage);
        let _ = s.shutdown(std::net::Shutdown::Write);
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    let mut s = TcpStream::connect(("127.0.0.1", alfa.ports.smtp)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    read_reply(&mut s);
    s.write_all(
        b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@pec.alfa.test>\r\nDATA\r\n",
    )
    .unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    // Still serving.
    let (ok, out) = alfa.send(&alice, &["--to", "carol@pec.alfa.test"]);
    assert!(ok, "{out}");
    assert!(!alfa.log().contains("panicked"), "{}", alfa.log());
}
