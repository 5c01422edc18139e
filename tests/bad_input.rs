//! Signed messages that break the PEC rules in one way each: `pecbox verify` reports each
//! as invalid with a reason naming the fault, and never panics.

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::*;
use pecbox::pec::classify::{classify, Class};
use pecbox::pec::kind::MessageKind;
use pecbox::smime::{certs, Signer};

/// Signs `entity` under `headers` with the test provider and checks it with the CLI.
fn verify_signed(provider: &TestProvider, headers: &str, entity: &[u8]) -> (Option<i32>, String) {
    let signed =
        pecbox::smime::build_signed_message(&provider.signer, headers, entity, at().utc()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, signed).unwrap();
    let out = run(pecbox()
        .arg("verify")
        .arg("--ca")
        .arg(provider.ca_path())
        .arg(&file));
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    (out.code, out.stdout)
}

fn receipt_headers(x_ricevuta: &str) -> String {
    format!(
        "From: posta-certificata@pec.example\r\nTo: alice@pec.example\r\nSubject: ACCETTAZIONE: prova\r\nMessage-ID: <r@pec.example>\r\nX-Ricevuta: {x_ricevuta}\r\n"
    )
}

#[test]
fn malformed_mime_inside_the_signature_is_invalid() {
    let provider = TestProvider::new("Bad PEC", "pec.example");
    let entity =
        b"Content-Type: multipart/mixed; boundary=\"never-used\"\r\n\r\nno parts at all\r\n";
    let (code, out) = verify_signed(&provider, &receipt_headers("accettazione"), entity);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("daticert.xml is missing"), "{out}");
}

#[test]
fn a_receipt_without_daticert_is_invalid() {
    let provider = TestProvider::new("Bad PEC", "pec.example");
    let good = build(MessageKind::Accettazione, &provider.gestore);
    // Keep only the text part of the mixed entity.
    let entity = String::from_utf8(good.entity.clone()).unwrap();
    let boundary = entity
        .split("boundary=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let parts: Vec<&str> = entity.split(&format!("--{boundary}")).collect();
    let stripped = format!("{}--{boundary}{}--{boundary}--\r\n", parts[0], parts[1]);
    let (code, out) = verify_signed(&provider, &good.header_block(), stripped.as_bytes());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("daticert.xml is missing"), "{out}");
}

#[test]
fn a_daticert_contradicting_the_headers_is_invalid() {
    let provider = TestProvider::new("Bad PEC", "pec.example");
    let consegna = build(
        MessageKind::AvvenutaConsegna(pecbox::pec::daticert::TipoRicevuta::Sintetica),
        &provider.gestore,
    );
    let headers = consegna
        .header_block()
        .replace("X-Ricevuta: avvenuta-consegna", "X-Ricevuta: accettazione");
    let (code, out) = verify_signed(&provider, &headers, &consegna.entity);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("daticert tipo avvenuta-consegna contradicts X-Ricevuta: accettazione"),
        "{out}"
    );
}

#[test]
fn an_unknown_x_ricevuta_is_invalid() {
    let provider = TestProvider::new("Bad PEC", "pec.example");
    let good = build(MessageKind::Accettazione, &provider.gestore);
    let headers = good
        .header_block()
        .replace("X-Ricevuta: accettazione", "X-Ricevuta: consegnato");
    let (code, out) = verify_signed(&provider, &headers, &good.entity);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("unknown X-Ricevuta value \"consegnato\""),
        "{out}"
    );
}

#[test]
fn pec_headers_without_a_signature_are_invalid() {
    let provider = TestProvider::new("Bad PEC", "pec.example");
    let unsigned = build(MessageKind::Accettazione, &provider.gestore).to_unsigned_bytes();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, &unsigned).unwrap();
    let out = run(pecbox()
        .arg("verify")
        .arg("--ca")
        .arg(provider.ca_path())
        .arg(&file));
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stdout.contains("not S/MIME signed"), "{}", out.stdout);
    assert_eq!(classify(&unsigned).class, Class::Malformed);
}

#[test]
fn a_signature_by_a_certificate_outside_its_validity_is_invalid() {
    let provider = TestProvider::new("Bad PEC", "pec.example");
    let expired = certs::generate_signing_cert(
        &provider.ca,
        "Bad PEC",
        "posta-certificata@pec.example",
        Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2021, 1, 1, 0, 0, 0).unwrap(),
    )
    .unwrap();
    let signer = Signer::from_pem(
        &format!("{}{}", expired.cert_pem, provider.ca.cert_pem),
        &expired.key_pkcs8_pem,
    )
    .unwrap();
    let message = build(MessageKind::Accettazione, &provider.gestore);
    let signed = pecbox::smime::build_signed_message(
        &signer,
        &message.header_block(),
        &message.entity,
        at().utc(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, signed).unwrap();
    let out = run(pecbox()
        .arg("verify")
        .arg("--ca")
        .arg(provider.ca_path())
        .arg(&file));
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stdout.contains("is not valid at"), "{}", out.stdout);

    // The same certificate is fine when the check is moved inside its validity.
    let out = run(pecbox()
        .args(["verify", "--at", "2020-06-01T12:00:00+02:00", "--ca"])
        .arg(provider.ca_path())
        .arg(&file));
    assert_eq!(out.code, Some(0), "{}", out.stdout);
}

#[test]
fn at_moves_the_check_time() {
    let provider = TestProvider::new("Bad PEC", "pec.example");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(
        &file,
        provider.sign(&build(MessageKind::Accettazione, &provider.gestore)),
    )
    .unwrap();
    let later = (Utc::now() + Duration::days(3650)).to_rfc3339();
    let out = run(pecbox()
        .args(["verify", "--at", &later, "--ca"])
        .arg(provider.ca_path())
        .arg(&file));
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    let out = run(pecbox().args(["verify", "--at", "yesterday"]).arg(&file));
    assert_eq!(
        out.code,
        Some(2),
        "a bad --at is a usage error: {}",
        out.stderr
    );
    assert!(out.stderr.contains("RFC 3339"), "{}", out.stderr);
}

#[test]
fn without_an_anchor_the_chain_is_not_trusted() {
    let provider = TestProvider::new("Bad PEC", "pec.example");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(
        &file,
        provider.sign(&build(MessageKind::Accettazione, &provider.gestore)),
    )
    .unwrap();
    let out = run(pecbox().arg("verify").arg(&file).current_dir(dir.path()));
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    let other = TestProvider::new("Other PEC", "pec.other");
    let out = run(pecbox()
        .arg("verify")
        .arg("--ca")
        .arg(other.ca_path())
        .arg(&file));
    assert_eq!(out.code, Some(1), "{}", out.stdout);
}

// Found by the fuzz targets (fuzz/): each input as the fuzzer found it (minimized).

/// `verify` target: a message/rfc822 part whose content is directly another
/// message/rfc822 entity, then the closing boundary, tripped a `debug_assert!` inside
/// mail-parser (debug builds panicked in `classify`); now it is malformed, not a panic.
const FUZZ_NESTED_RFC822: &[u8] = b"Content-Type:multipart;boundary==_1417097536-6559-27\n\n--=_1417097536-6559-27Content-Type:message/rfc822\n\nContent-Type:message/rfc822\n\n\n--=_1417097536-6559-27--";

#[test]
fn fuzz_second_mail_parser_assert_is_no_panic() {
    // another nesting that reaches mail-parser's assert (the verify target, 2026-12-04)
    let raw = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/fuzz/verify-mail-parser-assert-2.eml"),
    )
    .unwrap();
    let class = classify(&raw);
    assert_ne!(
        class.class,
        Class::Pec(pecbox::pec::kind::MessageKind::BustaTrasporto)
    );
    let report = pecbox::cli::verify::verify_raw("m.eml", &raw, &[], None);
    assert_ne!(report.outcome, pecbox::cli::verify::Outcome::Valid);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, &raw).unwrap();
    let out = run(pecbox().arg("verify").arg(&file));
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(matches!(out.code, Some(1) | Some(2)), "{}", out.stdout);
}

#[test]
fn fuzz_directly_nested_rfc822_is_malformed_not_a_panic() {
    assert_eq!(classify(FUZZ_NESTED_RFC822).class, Class::Malformed);
    let report = pecbox::cli::verify::verify_raw("m.eml", FUZZ_NESTED_RFC822, &[], None);
    assert_ne!(report.outcome, pecbox::cli::verify::Outcome::Valid);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, FUZZ_NESTED_RFC822).unwrap();
    let out = run(pecbox().arg("verify").arg(&file));
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
}
