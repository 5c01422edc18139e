//! Real provider messages (tests/data/pec-samples): the eight that verify byte-exact are
//! valid for `pecbox verify` with their issuer as anchor, at signing time, and named
//! as the right kind; any one-byte change in a signed part makes them invalid; broken
//! files are unreadable, never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The eight byte-exact samples of SOURCES.md, with their kind.
const GENUINE: [(&str, &str); 8] = [
    ("OCA_l10n-italy/aruba-2014-accettazione.eml", "accettazione"),
    (
        "OCA_l10n-italy/aruba-2014-avvenuta-consegna.eml",
        "avvenuta-consegna-completa",
    ),
    (
        "OCA_l10n-italy/aruba-2014-busta-trasporto-1.eml",
        "busta-trasporto",
    ),
    (
        "OCA_l10n-italy/aruba-2014-busta-trasporto-2.eml",
        "busta-trasporto",
    ),
    ("OCA_l10n-italy/aruba-2018-accettazione.eml", "accettazione"),
    (
        "OCA_l10n-italy/aruba-2018-avvenuta-consegna.eml",
        "avvenuta-consegna-completa",
    ),
    (
        "OCA_l10n-italy/sogei-2018-busta-trasporto-invio-file.eml",
        "busta-trasporto",
    ),
    (
        "OCA_l10n-italy/sogei-2018-busta-trasporto-ricevuta-sdi.eml",
        "busta-trasporto",
    ),
];

/// The issuer certificate carried in the sample's own p7s, extracted by openssl.
fn issuer_pem(sample: &Path, dir: &Path) -> PathBuf {
    let p7 = dir.join("sig.p7");
    let out = run(Command::new("openssl")
        .args(["smime", "-pk7out", "-in"])
        .arg(sample)
        .arg("-out")
        .arg(&p7));
    assert!(out.ok, "{}", out.stderr);
    let certs = run(Command::new("openssl")
        .args(["pkcs7", "-print_certs", "-in"])
        .arg(&p7));
    assert!(certs.ok, "{}", certs.stderr);
    // Blocks are preceded by subject= / issuer= lines; the issuer is the block whose
    // subject is the leaf's issuer.
    let blocks: Vec<(String, String, String)> = certs
        .stdout
        .split("-----END CERTIFICATE-----")
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .map(|b| {
            let subject = b
                .lines()
                .find(|l| l.starts_with("subject="))
                .unwrap_or("")
                .trim_start_matches("subject=")
                .trim()
                .to_string();
            let issuer = b
                .lines()
                .find(|l| l.starts_with("issuer="))
                .unwrap_or("")
                .trim_start_matches("issuer=")
                .trim()
                .to_string();
            let pem = format!(
                "-----BEGIN CERTIFICATE-----{}-----END CERTIFICATE-----\n",
                b.split("-----BEGIN CERTIFICATE-----").nth(1).unwrap()
            );
            (subject, issuer, pem)
        })
        .collect();
    let leaf = blocks
        .iter()
        .find(|(s, _, _)| s.contains("Posta Certificata"))
        .expect("leaf");
    let issuer = blocks
        .iter()
        .find(|(s, _, _)| *s == leaf.1)
        .expect("issuer in the p7s");
    let path = dir.join("issuer.pem");
    std::fs::write(&path, &issuer.2).unwrap();
    path
}

fn verify_json(file: &Path, ca: &Path) -> (Option<i32>, serde_json::Value, String) {
    let out = run(pecbox()
        .args(["verify", "--json", "--ca"])
        .arg(ca)
        .arg(file));
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let value = serde_json::from_str(out.stdout.trim()).unwrap_or(serde_json::Value::Null);
    (out.code, value, out.stdout + &out.stderr)
}

#[test]
fn genuine_samples_are_valid_at_signing_time_and_named_right() {
    for (name, kind) in GENUINE {
        let dir = tempfile::tempdir().unwrap();
        let sample = samples_dir().join(name);
        let ca = issuer_pem(&sample, dir.path());
        let (code, json, all) = verify_json(&sample, &ca);
        assert_eq!(code, Some(0), "{name}: {all}");
        assert_eq!(json["outcome"], "valid", "{name}");
        assert_eq!(json["kind"], kind, "{name}");
        assert!(
            json["signer"]["subject"]
                .as_str()
                .unwrap()
                .contains("Posta Certificata"),
            "{name}"
        );
        assert!(json["signing_time"].is_string(), "{name}");
        assert!(
            json["daticert"]["identificativo"]
                .as_str()
                .unwrap()
                .contains('@'),
            "{name}"
        );
        let human = run(pecbox().args(["verify", "--ca"]).arg(&ca).arg(&sample));
        assert!(human.stdout.contains(": VALID"), "{name}: {}", human.stdout);
        for label in [
            "kind:",
            "signer:",
            "signing time:",
            "chain:",
            "sender:",
            "recipients:",
            "identificativo:",
            "errore:",
        ] {
            assert!(
                human.stdout.contains(label),
                "{name}: {label} missing in {}",
                human.stdout
            );
        }
    }
}

#[test]
fn known_facts_of_a_genuine_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let sample = samples_dir().join("OCA_l10n-italy/aruba-2018-avvenuta-consegna.eml");
    let ca = issuer_pem(&sample, dir.path());
    let (_, json, _) = verify_json(&sample, &ca);
    let d = &json["daticert"];
    assert_eq!(d["sender"], "l.battistini@pec.it");
    assert_eq!(
        d["identificativo"],
        "opec288.20181113163926.01838.310.1.63@pec.aruba.it"
    );
    assert_eq!(d["consegna"], "l.battistini@pec.it");
    assert_eq!(d["errore"], "nessuno");
    assert_eq!(d["recipients"][0]["address"], "l.battistini@pec.it");
    assert_eq!(d["recipients"][0]["tipo"], "certificato");
    assert!(json["signer"]["emails"]
        .to_string()
        .contains("posta-certificata@pec.aruba.it"));
    assert_eq!(json["digest"], "sha1");
}

/// Flips one byte inside the signed entity at each of several places.
#[test]
fn any_one_byte_change_in_a_signed_part_makes_a_sample_invalid() {
    for (name, _) in GENUINE {
        let dir = tempfile::tempdir().unwrap();
        let sample = samples_dir().join(name);
        let ca = issuer_pem(&sample, dir.path());
        let raw = std::fs::read(&sample).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let boundary = text
            .split("boundary=\"")
            .nth(1)
            .map(|b| b.split('"').next().unwrap().to_string())
            .or_else(|| {
                text.split("boundary=").nth(1).map(|b| {
                    b.split(|c: char| c.is_whitespace() || c == ';')
                        .next()
                        .unwrap()
                        .to_string()
                })
            })
            .unwrap();
        let first = text.find(&format!("--{boundary}")).unwrap() + boundary.len() + 3;
        let second = first + text[first..].find(&format!("--{boundary}")).unwrap();
        // Three places in the signed entity: its headers, the middle and near the end.
        for at in [first + 10, (first + second) / 2, second - 20] {
            let mut changed = raw.clone();
            let original = changed[at];
            changed[at] = if original == b'A' {
                b'B'
            } else if original.is_ascii_alphanumeric() {
                b'A'
            } else {
                b'x'
            };
            let file = dir.path().join("changed.eml");
            std::fs::write(&file, &changed).unwrap();
            let (code, json, all) = verify_json(&file, &ca);
            assert_eq!(code, Some(1), "{name} byte {at}: {all}");
            assert_eq!(json["outcome"], "invalid");
            let reasons = json["reasons"].to_string();
            assert!(
                reasons.contains("digest"),
                "{name}: the reason names the digest: {reasons}"
            );
        }
    }
}

#[test]
fn edited_and_anonymised_samples_are_invalid_not_crashes() {
    let edited = [
        "OCA_l10n-italy/sogei-2019-busta-trasporto-notifica-sdi.eml",
        "SimoneP91_PMM-PecMassiveMailer/accettazione.eml",
        "SimoneP91_PMM-PecMassiveMailer/errore-consegna.eml",
        "danzipie_go-pec/email_2-avvenuta-consegna.eml",
        "danzipie_go-pec/email_3-busta-trasporto.eml",
        "biagioT_java-pec-parser/accettazione.eml",
        "biagioT_java-pec-parser/consegna.eml",
    ];
    let anyca = samples_dir().join("OCA_l10n-italy/aruba-2018-accettazione.eml");
    let dir = tempfile::tempdir().unwrap();
    let ca = issuer_pem(&anyca, dir.path());
    for name in edited {
        let (code, json, all) = verify_json(&samples_dir().join(name), &ca);
        assert!(code == Some(1) || code == Some(2), "{name}: {all}");
        assert_ne!(json["outcome"], "valid", "{name}");
    }
}

#[test]
fn truncated_files_and_random_bytes_are_unreadable_with_a_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let sample = std::fs::read(samples_dir().join(GENUINE[0].0)).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("half".into(), sample[..sample.len() / 2].to_vec()),
        ("empty".into(), Vec::new()),
        (
            "random".into(),
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
    ];
    // Cut inside the base64 of the signature.
    let sig = String::from_utf8_lossy(&sample).rfind("smime.p7s").unwrap();
    cases.push(("inside-signature".into(), sample[..sig + 200].to_vec()));
    for (label, bytes) in cases {
        let file = dir.path().join(format!("{label}.eml"));
        std::fs::write(&file, &bytes).unwrap();
        let out = run(pecbox().args(["verify", "--ca"]).arg(dtd()).arg(&file));
        // The DTD is not a certificate: that alone is a clear error, exit 2.
        assert_eq!(out.code, Some(2), "{label}: {}", out.stderr);
        let out = run(pecbox().arg("verify").arg(&file));
        assert_eq!(out.code, Some(2), "{label}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("UNREADABLE"), "{label}: {}", out.stdout);
        assert!(!out.stderr.contains("panicked"), "{label}");
    }
    let missing = run(pecbox().arg("verify").arg(dir.path().join("nope.eml")));
    assert_eq!(missing.code, Some(2));
    assert!(missing.stdout.contains("cannot read the file"));
}
