//! S/MIME interoperability: our messages against `openssl smime -verify`, openssl's
//! signatures against our verifier, and the real provider samples in tests/data/pec-samples.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use chrono::{Duration, Utc};
use pecbox::smime::{
    build_signed_message, generate_ca, generate_signing_cert, generate_tls_cert, verify_message,
    ChainStatus, DigestAlg, GeneratedCert, IntegrityError, Signer, SmimeError, Verification,
    VerifyOptions,
};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pec-samples");

/// The samples whose signature openssl verifies (SOURCES.md).
const GENUINE: [&str; 8] = [
    "OCA_l10n-italy/aruba-2014-accettazione.eml",
    "OCA_l10n-italy/aruba-2014-avvenuta-consegna.eml",
    "OCA_l10n-italy/aruba-2014-busta-trasporto-1.eml",
    "OCA_l10n-italy/aruba-2014-busta-trasporto-2.eml",
    "OCA_l10n-italy/aruba-2018-accettazione.eml",
    "OCA_l10n-italy/aruba-2018-avvenuta-consegna.eml",
    "OCA_l10n-italy/sogei-2018-busta-trasporto-invio-file.eml",
    "OCA_l10n-italy/sogei-2018-busta-trasporto-ricevuta-sdi.eml",
];

/// Edited after signing: the signature must not hold.
const EDITED: [&str; 3] = [
    "OCA_l10n-italy/sogei-2019-busta-trasporto-notifica-sdi.eml",
    "SimoneP91_PMM-PecMassiveMailer/accettazione.eml",
    "SimoneP91_PMM-PecMassiveMailer/errore-consegna.eml",
];

struct Provider {
    ca: GeneratedCert,
    leaf: GeneratedCert,
    signer: Signer,
}

fn provider() -> &'static Provider {
    static P: OnceLock<Provider> = OnceLock::new();
    P.get_or_init(|| {
        let nb = Utc::now() - Duration::days(1);
        let na = Utc::now() + Duration::days(365);
        let ca = generate_ca("Interop PEC", nb, na).unwrap();
        let leaf = generate_signing_cert(
            &ca,
            "Interop PEC",
            "posta-certificata@interop.example",
            nb,
            na,
        )
        .unwrap();
        let signer = Signer::from_pem(
            &format!("{}{}", leaf.cert_pem, ca.cert_pem),
            &leaf.key_pkcs8_pem,
        )
        .unwrap();
        Provider { ca, leaf, signer }
    })
}

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed")
}

fn anchored(ca_der: &[u8]) -> VerifyOptions {
    VerifyOptions {
        anchors: vec![ca_der.to_vec()],
        at: None,
    }
}

const ENTITY: &[u8] = b"Content-Type: multipart/mixed; boundary=\"mixed-1\"\r\n\
\r\n\
This is a multi-part message in MIME format.\r\n\
--mixed-1\r\n\
Content-Type: text/plain; charset=\"iso-8859-1\"\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Ricevuta di accettazione: il messaggio =E8 stato accettato.\r\n\
--mixed-1\r\n\
Content-Type: application/xml; name=\"daticert.xml\"\r\n\
Content-Disposition: inline; filename=\"daticert.xml\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHBvc3RhY2VydCB0aXBvPSJhY2NldHRhemlvbmUiLz4=\r\n\
--mixed-1--\r\n";

const TOP: &str =
    "From: \"Per conto di: alice@interop.example\" <posta-certificata@interop.example>\r\n\
To: bob@interop.example\r\n\
Subject: ACCETTAZIONE: prova\r\n\
Date: Mon, 2 Mar 2026 10:00:05 +0100\r\n\
Message-ID: <opec-1@interop.example>\r\n\
X-Ricevuta: accettazione\r\n";

#[test]
fn openssl_verifies_our_messages() {
    let p = provider();
    let dir = tempfile::tempdir().unwrap();
    let msg = build_signed_message(&p.signer, TOP, ENTITY, Utc::now()).unwrap();
    std::fs::write(dir.path().join("msg.eml"), &msg).unwrap();
    std::fs::write(dir.path().join("ca.pem"), &p.ca.cert_pem).unwrap();
    // default purpose (smimesign): the certificate profile must satisfy it too
    let out = openssl(
        &[
            "smime",
            "-verify",
            "-CAfile",
            "ca.pem",
            "-in",
            "msg.eml",
            "-out",
            "content.out",
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Verification successful"), "{stderr}");
    // openssl hands back exactly the entity we signed
    let content = std::fs::read(dir.path().join("content.out")).unwrap();
    assert_eq!(
        pecbox::smime::canonicalize_crlf(&content),
        ENTITY,
        "content returned by openssl"
    );
    // and our own verifier agrees
    let v = verify_message(&msg, &anchored(&p.ca.cert_der)).unwrap();
    assert!(v.is_valid(), "{:?}", v.problems());

    // a changed byte is caught by openssl as well
    let mut bad = msg.clone();
    let at = find(&bad, b"accettato").unwrap();
    bad[at] = b'A';
    std::fs::write(dir.path().join("bad.eml"), &bad).unwrap();
    let out = openssl(
        &["smime", "-verify", "-CAfile", "ca.pem", "-in", "bad.eml"],
        dir.path(),
    );
    assert!(!out.status.success());
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn openssl_signatures_verify_with_us() {
    let p = provider();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leaf.pem"), &p.leaf.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &p.leaf.key_pkcs8_pem).unwrap();
    std::fs::write(dir.path().join("ca.pem"), &p.ca.cert_pem).unwrap();
    std::fs::write(dir.path().join("entity.txt"), ENTITY).unwrap();
    for (md, alg) in [
        ("sha1", DigestAlg::Sha1),
        ("sha256", DigestAlg::Sha256),
        ("sha384", DigestAlg::Sha384),
        ("sha512", DigestAlg::Sha512),
    ] {
        let out_name = format!("signed-{md}.eml");
        let out = openssl(
            &[
                "smime",
                "-sign",
                "-md",
                md,
                "-signer",
                "leaf.pem",
                "-inkey",
                "key.pem",
                "-certfile",
                "ca.pem",
                "-in",
                "entity.txt",
                "-out",
                &out_name,
            ],
            dir.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let signed = std::fs::read(dir.path().join(&out_name)).unwrap();
        let v = verify_message(&signed, &anchored(&p.ca.cert_der)).unwrap();
        assert!(v.is_valid(), "{md}: {:?}", v.problems());
        assert_eq!(v.digest, alg);
        assert_eq!(v.certificates.len(), 2);
        let s = v.signer.as_ref().unwrap();
        assert_eq!(s.emails, vec!["posta-certificata@interop.example"]);
        assert_eq!(s.der, p.leaf.cert_der);

        let mut bad = signed.clone();
        let at = find(&bad, b"accettato").unwrap();
        bad[at] ^= 0x20;
        let v = verify_message(&bad, &anchored(&p.ca.cert_der)).unwrap();
        assert_eq!(v.integrity, Err(IntegrityError::DigestMismatch), "{md}");
        assert!(!v.is_valid());
    }
}

#[test]
fn openssl_ecdsa_signature_verifies_but_tls_usage_is_refused() {
    let p = provider();
    let dir = tempfile::tempdir().unwrap();
    let nb = Utc::now() - Duration::days(1);
    let tls = generate_tls_cert(
        &p.ca,
        &["pec.interop.example".into()],
        nb,
        nb + Duration::days(30),
    )
    .unwrap();
    std::fs::write(dir.path().join("tls.pem"), &tls.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &tls.key_pkcs8_pem).unwrap();
    std::fs::write(dir.path().join("entity.txt"), ENTITY).unwrap();
    let out = openssl(
        &[
            "smime",
            "-sign",
            "-md",
            "sha256",
            "-signer",
            "tls.pem",
            "-inkey",
            "tls.key",
            "-in",
            "entity.txt",
            "-out",
            "ec.eml",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed = std::fs::read(dir.path().join("ec.eml")).unwrap();
    let v = verify_message(&signed, &anchored(&p.ca.cert_der)).unwrap();
    assert!(v.integrity.is_ok(), "{:?}", v.problems());
    assert!(matches!(v.chain, ChainStatus::Valid { .. }));
    assert!(v.key_usage.is_err());
    assert!(!v.is_valid());
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(SAMPLES).join(name)).unwrap()
}

/// Verifies once without anchors to learn the chain, then with the leaf's issuer
/// (taken from the signature itself) as the anchor.
fn verify_with_own_issuer(raw: &[u8]) -> Verification {
    let first = verify_message(raw, &VerifyOptions::default()).unwrap();
    assert_eq!(first.chain, ChainStatus::NoAnchors);
    let leaf = first
        .signer
        .as_ref()
        .expect("signer certificate")
        .der
        .clone();
    let anchors: Vec<Vec<u8>> = first
        .certificates
        .iter()
        .filter(|c| **c != leaf)
        .cloned()
        .collect();
    assert!(!anchors.is_empty());
    verify_message(raw, &VerifyOptions { anchors, at: None }).unwrap()
}

#[test]
fn genuine_provider_samples_verify() {
    for name in GENUINE {
        let raw = sample(name);
        let v = verify_with_own_issuer(&raw);
        assert!(v.is_valid(), "{name}: {:?}", v.problems());
        assert!(v.problems().is_empty());
        assert_eq!(v.digest, DigestAlg::Sha1, "{name}");
        let s = v.signer.as_ref().unwrap();
        assert!(
            s.subject.contains("Posta Certificata"),
            "{name}: {}",
            s.subject
        );
        assert!(
            s.emails.iter().any(|e| e.starts_with("posta-certificata@")),
            "{name}"
        );
        assert_eq!(s.sha1_hex.len(), 40);
        assert!(v.signing_time.is_some(), "{name}");
        assert!(matches!(v.chain, ChainStatus::Valid { .. }), "{name}");
        // the same check years later fails on validity, not on integrity
        let later = verify_message(
            &raw,
            &VerifyOptions {
                anchors: v.certificates.clone(),
                at: Some(Utc::now() + Duration::days(365 * 30)),
            },
        )
        .unwrap();
        assert!(later.integrity.is_ok());
        assert!(matches!(later.chain, ChainStatus::Expired { .. }), "{name}");
    }
}

#[test]
fn one_changed_byte_in_a_genuine_sample_breaks_integrity() {
    for name in GENUINE {
        let raw = sample(name);
        // a letter in the middle of the signed entity
        let start = find(&raw, b"\n--").unwrap();
        let end = raw
            .windows(15)
            .rposition(|w| w.eq_ignore_ascii_case(b"pkcs7-signature"))
            .unwrap();
        let mut at = (start + end) / 2;
        while !raw[at].is_ascii_alphabetic() {
            at += 1;
        }
        let mut changed = raw.clone();
        changed[at] ^= 0x20;
        let v = verify_with_own_issuer(&changed);
        assert!(!v.is_valid(), "{name}");
        assert_eq!(v.integrity, Err(IntegrityError::DigestMismatch), "{name}");
        assert!(v.problems()[0].starts_with("integrity"), "{name}");
    }
}

#[test]
fn edited_samples_fail_integrity() {
    for name in EDITED {
        let v = verify_with_own_issuer(&sample(name));
        assert!(!v.is_valid(), "{name}");
        assert_eq!(v.integrity, Err(IntegrityError::DigestMismatch), "{name}");
    }
}

#[test]
fn unreadable_inputs_are_errors_not_panics() {
    // samples without a usable signature part
    for name in [
        "biagioT_java-pec-parser/accettazione.eml",
        "biagioT_java-pec-parser/consegna.eml",
        "danzipie_go-pec/email_2-avvenuta-consegna.eml",
        "danzipie_go-pec/email_3-busta-trasporto.eml",
    ] {
        assert!(
            verify_message(&sample(name), &VerifyOptions::default()).is_err(),
            "{name}"
        );
    }
    // truncations of a genuine sample: never a panic; a cut signature is an error
    let raw = sample(GENUINE[4]);
    let sig_start = find(&raw, b"MIIG").or_else(|| find(&raw, b"MII")).unwrap();
    for cut in (0..raw.len()).step_by(97) {
        let r = verify_message(&raw[..cut], &VerifyOptions::default());
        if cut < sig_start {
            assert!(r.is_err(), "cut at {cut}");
        }
    }
    // random bytes
    let mut x: u32 = 12345;
    for len in [0usize, 1, 10, 100, 5000] {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        assert!(verify_message(&junk, &VerifyOptions::default()).is_err());
        assert!(pecbox::smime::verify_detached(b"x", &junk, &VerifyOptions::default()).is_err());
    }
    assert!(matches!(
        verify_message(b"From: a\r\n\r\nhello", &VerifyOptions::default()),
        Err(SmimeError::NotSigned)
    ));
}
