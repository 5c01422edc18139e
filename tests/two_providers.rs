//! Two pecbox providers on one machine exchange certified mail end to end, driven by
//! Python's smtplib and poplib over TLS; every message is checked with openssl, pecbox
//! verify and xmllint.

mod common;
mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

const WAIT: Duration = Duration::from_secs(30);

/// openssl, pecbox verify and xmllint agree that `message` is a valid PEC message of
/// `kind` signed by the provider whose CA is `ca`.
fn check_certified(message: &[u8], ca: &std::path::Path, kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, message).unwrap();
    let openssl = common::openssl_verify(&file, ca);
    assert!(openssl.ok, "{kind}: openssl: {}", openssl.stderr);
    let verify = common::run(
        pecbox()
            .args(["verify", "--json", "--ca"])
            .arg(ca)
            .arg(&file),
    );
    assert_eq!(verify.code, Some(0), "{kind}: {}", verify.stdout);
    let json: serde_json::Value = serde_json::from_str(verify.stdout.trim()).unwrap();
    assert_eq!(json["kind"], kind, "{}", verify.stdout);
    let parsed = mail_parser::MessageParser::default()
        .parse(message)
        .unwrap();
    if let Some(xml) = parsed
        .parts
        .iter()
        .find(|p| mail_parser::MimeHeaders::attachment_name(*p) == Some("daticert.xml"))
    {
        let xml_file = dir.path().join("daticert.xml");
        std::fs::write(&xml_file, xml.contents()).unwrap();
        let lint = common::run(
            Command::new("xmllint")
                .args(["--noout", "--dtdvalid"])
                .arg(common::dtd())
                .arg(&xml_file),
        );
        assert!(lint.ok, "{kind}: xmllint: {}", lint.stderr);
    }
}

fn kinds(messages: &[Vec<u8>]) -> Vec<String> {
    let mut k: Vec<String> = messages
        .iter()
        .map(|m| match pecbox::pec::classify::classify(m).kind() {
            Some(kind) => kind.code().to_string(),
            None => "other".to_string(),
        })
        .collect();
    k.sort();
    k
}

#[test]
fn alice_at_alfa_sends_to_bob_at_beta_with_every_receipt() {
    let (mut alfa, mut beta) = two_providers("");
    let alice = alfa.add_mailbox("alice");
    let bob = beta.add_mailbox("bob");
    alfa.start();
    beta.start();

    let (ok, out) = alfa.send(&alice, &["--to", &bob, "--subject", "Fattura 42"]);
    assert!(ok, "{out}");

    let bob_box = beta.wait_for(&bob, 1, WAIT);
    assert_eq!(bob_box.len(), 1, "bob: {}", beta.log());
    assert!(subject(&bob_box[0]).starts_with("POSTA CERTIFICATA: Fattura 42"));
    check_certified(&bob_box[0], &alfa.ca_path(), "busta-trasporto");

    let alice_box = alfa.wait_for(&alice, 2, WAIT);
    assert_eq!(
        kinds(&alice_box),
        ["accettazione", "avvenuta-consegna-completa"],
        "{}",
        alfa.log()
    );
    for m in &alice_box {
        let issuer = if subject(m).starts_with("ACCETTAZIONE") {
            alfa.ca_path()
        } else {
            beta.ca_path()
        };
        let kind = pecbox::pec::classify::classify(m).kind().unwrap();
        check_certified(m, &issuer, kind.code());
    }
    assert_eq!(alfa.stop(), Some(0));
    assert_eq!(beta.stop(), Some(0));
}

#[test]
fn receipt_types_cc_and_three_recipients_on_two_providers() {
    let (mut alfa, mut beta) = two_providers("");
    let alice = alfa.add_mailbox("alice");
    let carol = alfa.add_mailbox("carol");
    let bob = beta.add_mailbox("bob");
    let dan = beta.add_mailbox("dan");
    alfa.start();
    beta.start();

    // breve: the attachment comes back as its hash.
    let (ok, out) = alfa.send(
        &alice,
        &[
            "--to",
            &bob,
            "--header",
            "X-TipoRicevuta: breve",
            "--attach-bytes",
            "5000",
            "--subject",
            "breve",
        ],
    );
    assert!(ok, "{out}");
    // sintetica
    let (ok, out) = alfa.send(
        &alice,
        &[
            "--to",
            &bob,
            "--header",
            "X-TipoRicevuta: sintetica",
            "--subject",
            "sintetica",
        ],
    );
    assert!(ok, "{out}");
    // three recipients on two providers, one of them in Cc: one receipt per recipient.
    let (ok, out) = alfa.send(
        &alice,
        &[
            "--to",
            &bob,
            "--to",
            &carol,
            "--cc",
            &dan,
            "--subject",
            "tre",
        ],
    );
    assert!(ok, "{out}");

    // accettazione ×3, consegna breve, sintetica, and 3 for "tre" (bob completa,
    // carol completa, dan sintetica because Cc).
    let alice_box = alfa.wait_for(&alice, 8, WAIT);
    let k = kinds(&alice_box);
    assert_eq!(
        k.iter().filter(|k| *k == "accettazione").count(),
        3,
        "{k:?}"
    );
    assert_eq!(
        k.iter().filter(|k| *k == "avvenuta-consegna-breve").count(),
        1,
        "{k:?}"
    );
    assert_eq!(
        k.iter()
            .filter(|k| *k == "avvenuta-consegna-sintetica")
            .count(),
        2,
        "{k:?}"
    );
    assert_eq!(
        k.iter()
            .filter(|k| *k == "avvenuta-consegna-completa")
            .count(),
        2,
        "{k:?}"
    );
    for m in &alice_box {
        let c = pecbox::pec::classify::classify(m);
        let consegna = c
            .daticert
            .as_ref()
            .and_then(|d| d.consegna.clone())
            .unwrap_or_default();
        let issuer = if consegna.ends_with("pec.beta.test") {
            beta.ca_path()
        } else {
            alfa.ca_path()
        };
        check_certified(m, &issuer, c.kind().unwrap().code());
        if c.kind().unwrap().code() == "avvenuta-consegna-breve" {
            let inner = String::from_utf8_lossy(c.postacert.as_deref().unwrap()).into_owned();
            assert!(inner.contains("allegato.bin.hash"), "{inner}");
        }
        if subject(m).ends_with("tre") && consegna == dan {
            assert_eq!(c.kind().unwrap().code(), "avvenuta-consegna-sintetica");
        }
    }
    assert_eq!(beta.wait_for(&bob, 3, WAIT).len(), 3);
    assert_eq!(beta.wait_for(&dan, 1, WAIT).len(), 1);
    let carol_box = alfa.wait_for(&carol, 1, WAIT);
    assert_eq!(carol_box.len(), 1);
    check_certified(&carol_box[0], &alfa.ca_path(), "busta-trasporto");
}
