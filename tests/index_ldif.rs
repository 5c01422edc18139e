//! The providers' index as LDIF: our writer against our reader, a hand-written
//! RFC 6109 §5.6-style file, and `.p7m` files signed by openssl.
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use chrono::{Duration, Utc};
use pecbox::provider::index::{
    certificate_hash, entries_to_ldif, entry_to_ldif, parse_ldif, parse_signed_ldif, self_entry,
    IndexError,
};
use pecbox::smime::{generate_ca, generate_signing_cert, GeneratedCert};
use pecbox::store::ProviderEntry;

struct Pki {
    ca: GeneratedCert,
    leaf: GeneratedCert,
    other_ca: GeneratedCert,
}

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(|| {
        let nb = Utc::now() - Duration::days(1);
        let na = Utc::now() + Duration::days(365);
        let ca = generate_ca("Indice PEC", nb, na).unwrap();
        let leaf =
            generate_signing_cert(&ca, "Indice PEC", "indice@pec.test.example", nb, na).unwrap();
        let other_ca = generate_ca("Altro", nb, na).unwrap();
        Pki { ca, leaf, other_ca }
    })
}

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// RFC 2849 folding by hand: 76 columns, then a space and 75.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    let mut width = 76;
    while rest.len() > width {
        let (a, b) = rest.split_at(width);
        out.push_str(a);
        out.push_str("\r\n ");
        rest = b;
        width = 75;
    }
    out.push_str(rest);
    out
}

fn two_cert_entry() -> ProviderEntry {
    let p = pki();
    let certificates = vec![p.leaf.cert_der.clone(), p.ca.cert_der.clone()];
    ProviderEntry {
        name: "Società Certificata «Città» S.p.A.".into(),
        domains: (1..=25)
            .map(|i| format!("pec{i}.città-esempio.it"))
            .collect(),
        mail_receipt: "posta-certificata@pec1.example.it".into(),
        certificate_hashes: certificates.iter().map(|c| certificate_hash(c)).collect(),
        certificates,
    }
}

#[test]
fn round_trip() {
    let entry = two_cert_entry();
    let ldif = entry_to_ldif(&entry);
    assert!(ldif.lines().all(|l| l.len() <= 76), "{ldif}");
    assert!(ldif.starts_with("dn:: "), "non-ASCII DN goes base64");
    assert!(ldif.contains("\nproviderName:: "));
    assert!(ldif.contains("\nobjectClass: provider\n"));
    assert_eq!(ldif.matches("\nmanagedDomains").count(), 25);
    assert_eq!(ldif.matches("\nproviderCertificate;binary:: ").count(), 2);
    assert_eq!(ldif.matches("\nproviderCertificateHash: ").count(), 2);
    let unfolded = ldif.replace("\n ", "");
    let dn = unfolded
        .lines()
        .next()
        .unwrap()
        .strip_prefix("dn:: ")
        .unwrap();
    let dn = base64::engine::general_purpose::STANDARD
        .decode(dn)
        .unwrap();
    assert_eq!(
        String::from_utf8(dn).unwrap(),
        "providerName=Società Certificata «Città» S.p.A.,o=postacert"
    );
    assert_eq!(parse_ldif(&ldif).unwrap(), vec![entry.clone()]);

    // several entries, a unit, a name that needs DN escaping, a plain ASCII one
    let plain = self_entry(
        "Rossi, Bianchi + C. PEC",
        &["PEC.Rossi.example".into()],
        "posta-certificata@pec.rossi.example",
        &pki().leaf.cert_der,
    );
    assert_eq!(plain.domains, vec!["pec.rossi.example"]);
    let unit = ProviderEntry {
        name: "Rossi, Bianchi + C. PEC/ambiente secondario".into(),
        ..plain.clone()
    };
    let file = entries_to_ldif(&[entry.clone(), plain.clone(), unit.clone()]);
    assert!(file.starts_with("version: 1\n\n"));
    let unfolded = file.replace("\n ", "");
    assert!(unfolded.contains("\ndn: providerName=Rossi\\, Bianchi \\+ C. PEC,o=postacert\n"));
    assert!(unfolded.contains(
        "\ndn: providerUnit=ambiente secondario,providerName=Rossi\\, Bianchi \\+ C. PEC,o=postacert\n"
    ));
    assert!(file.contains("\nproviderUnit: ambiente secondario\n"));
    assert_eq!(parse_ldif(&file).unwrap(), vec![entry, plain.clone(), unit]);
    // CRLF as well
    assert_eq!(
        parse_ldif(&entry_to_ldif(&plain).replace('\n', "\r\n")).unwrap(),
        vec![plain]
    );
}

/// The shape of RFC 6109 §5.6's example, with what real files add: comments, CRLF,
/// folded lines, base64 values, upper-case hashes, odd attribute case, a unit.
fn handwritten() -> String {
    let p = pki();
    let leaf = b64(&p.leaf.cert_der);
    let ca = b64(&p.ca.cert_der);
    let lines = [
        "version: 1".to_string(),
        String::new(),
        "# Indice dei gestori di posta certificata".into(),
        "#  a folded comment line".into(),
        " that goes on here".into(),
        "dn: o=postacert".into(),
        "objectClass: top".into(),
        "objectClass: organization".into(),
        "objectClass: LDIFLocationURLObject".into(),
        "o: postacert".into(),
        "LDIFLocationURL: https://igpec.rupa.example.com/igpec.ldif.p7m".into(),
        String::new(),
        String::new(),
        "dn: providerName=Gestore Esempio,o=postacert".into(),
        "objectclass: top".into(),
        "objectclass: provider".into(),
        "providerName: Gestore Esempio".into(),
        "description: un gestore".into(),
        "MANAGEDDOMAINS: pec.esempio.example".into(),
        "managedDomains:   Cert.Esempio.example  ".into(),
        "mailReceipt: posta-certificata@pec.esempio.example".into(),
        fold(&format!("providerCertificate;binary:: {leaf}")),
        fold(&format!("providerCertificate;binary::{ca}")),
        format!(
            "providerCertificateHash: {}",
            certificate_hash(&p.leaf.cert_der).to_uppercase()
        ),
        format!(
            "providerCertificateHash: {}",
            certificate_hash(&p.ca.cert_der)
        ),
        "LDIFLocationURL: https://pec.esempio.example/index.ldif.p7m".into(),
        String::new(),
        "# the secondary environment".into(),
        "dn: providerUnit=Ambiente 2,providerName=Gestore Esempio,o=postacert".into(),
        "objectClass: top".into(),
        "objectClass: provider".into(),
        format!("providerName:: {}", b64("Gestore Esempio".as_bytes())),
        "providerUnit: Ambiente 2".into(),
        "managedDomains: pec2.esempio.example".into(),
        "mailReceipt: posta-certificata@pec2.esempio.example".into(),
        fold(&format!("providerCertificate;binary:: {leaf}")),
        String::new(),
    ];
    lines.join("\r\n")
}

#[test]
fn handwritten_index() {
    let p = pki();
    let entries = parse_ldif(&handwritten()).unwrap();
    assert_eq!(entries.len(), 2, "the root entry is skipped");
    assert_eq!(
        entries[0],
        ProviderEntry {
            name: "Gestore Esempio".into(),
            domains: vec!["pec.esempio.example".into(), "cert.esempio.example".into()],
            mail_receipt: "posta-certificata@pec.esempio.example".into(),
            certificates: vec![p.leaf.cert_der.clone(), p.ca.cert_der.clone()],
            certificate_hashes: vec![
                certificate_hash(&p.leaf.cert_der),
                certificate_hash(&p.ca.cert_der)
            ],
        }
    );
    assert_eq!(entries[1].name, "Gestore Esempio/Ambiente 2");
    assert_eq!(entries[1].domains, vec!["pec2.esempio.example"]);
    assert_eq!(
        entries[1].certificate_hashes,
        vec![certificate_hash(&p.leaf.cert_der)],
        "computed when absent"
    );
    // LF only, and without the version line, reads the same
    let lf = handwritten()
        .replace("\r\n", "\n")
        .replacen("version: 1\n", "", 1);
    assert_eq!(parse_ldif(&lf).unwrap(), entries);
}

#[test]
fn hash_mismatch_is_an_error() {
    let wrong = certificate_hash(b"something else");
    let text = handwritten().replace(&certificate_hash(&pki().ca.cert_der), &wrong);
    match parse_ldif(&text) {
        Err(IndexError::HashMismatch { dn }) => {
            assert_eq!(dn, "providerName=Gestore Esempio,o=postacert")
        }
        other => panic!("{other:?}"),
    }
    // one hash for two certificates is a mismatch too
    let text = handwritten().replace(
        &format!(
            "providerCertificateHash: {}\r\n",
            certificate_hash(&pki().ca.cert_der)
        ),
        "",
    );
    assert!(matches!(
        parse_ldif(&text),
        Err(IndexError::HashMismatch { .. })
    ));
}

#[test]
fn missing_and_invalid_attributes_name_the_entry() {
    let text = handwritten().replace(
        "mailReceipt: posta-certificata@pec2.esempio.example\r\n",
        "",
    );
    let err = parse_ldif(&text).unwrap_err();
    match &err {
        IndexError::Missing { dn, attribute } => {
            assert_eq!(
                dn,
                "providerUnit=Ambiente 2,providerName=Gestore Esempio,o=postacert"
            );
            assert_eq!(*attribute, "mailReceipt");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("providerUnit=Ambiente 2"));
    for (attr, missing) in [
        ("providerName: Gestore Esempio\r\n", "providerName"),
        (
            "MANAGEDDOMAINS: pec.esempio.example\r\nmanagedDomains:   Cert.Esempio.example  \r\n",
            "managedDomains",
        ),
    ] {
        let text = handwritten().replacen(attr, "", 1);
        match parse_ldif(&text) {
            Err(IndexError::Missing { attribute, .. }) => assert_eq!(attribute, missing),
            other => panic!("{missing}: {other:?}"),
        }
    }
    let no_certs = "dn: providerName=X,o=postacert\nobjectClass: provider\nproviderName: X\n\
        managedDomains: x.example\nmailReceipt: a@x.example\n";
    assert!(matches!(
        parse_ldif(no_certs),
        Err(IndexError::Missing {
            attribute: "providerCertificate",
            ..
        })
    ));
    let bad_cert = format!(
        "{no_certs}providerCertificate;binary:: {}\n",
        b64(b"not DER")
    );
    assert!(matches!(
        parse_ldif(&bad_cert),
        Err(IndexError::Invalid { .. })
    ));
    let two_names = format!("{no_certs}providerName: Y\n");
    assert!(matches!(
        parse_ldif(&two_names),
        Err(IndexError::Invalid { .. })
    ));
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("/usr/bin/openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Signs `ldif` with openssl in every form we accept.
fn signed_forms(ldif: &str) -> Vec<(&'static str, Vec<u8>)> {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("index.ldif"), ldif).unwrap();
    std::fs::write(d.join("leaf.pem"), &p.leaf.cert_pem).unwrap();
    std::fs::write(d.join("leaf.key"), &p.leaf.key_pkcs8_pem).unwrap();
    std::fs::write(d.join("ca.pem"), &p.ca.cert_pem).unwrap();
    let sign = [
        "-sign",
        "-nodetach",
        "-in",
        "index.ldif",
        "-signer",
        "leaf.pem",
    ];
    let key = ["-inkey", "leaf.key", "-certfile", "ca.pem"];
    let forms: [(&str, &str, &[&str]); 4] = [
        ("smime-der", "smime", &["-binary", "-outform", "DER"]),
        ("smime-mime", "smime", &[]),
        (
            "cms-ber-stream",
            "cms",
            &["-binary", "-outform", "DER", "-stream"],
        ),
        ("cms-pem", "cms", &["-binary", "-outform", "PEM"]),
    ];
    forms
        .iter()
        .map(|(label, cmd, extra)| {
            let out = format!("{label}.p7m");
            let mut args = vec![*cmd];
            args.extend(sign);
            args.extend(key);
            args.extend(*extra);
            args.extend(["-out", &out]);
            openssl(&args, d);
            (*label, std::fs::read(d.join(&out)).unwrap())
        })
        .collect()
}

#[test]
fn openssl_signed_index() {
    let p = pki();
    let entry = two_cert_entry();
    let ldif = entries_to_ldif(std::slice::from_ref(&entry));
    for (label, p7m) in signed_forms(&ldif) {
        let (entries, signer) = parse_signed_ldif(&p7m, std::slice::from_ref(&p.ca.cert_der))
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(entries, vec![entry.clone()], "{label}");
        assert_eq!(
            signer.sha1_hex,
            certificate_hash(&p.leaf.cert_der),
            "{label}"
        );
        assert_eq!(
            signer.subject,
            "CN=Posta Certificata Indice PEC, O=Indice PEC, C=IT"
        );
        // a signer we do not trust
        match parse_signed_ldif(&p7m, std::slice::from_ref(&p.other_ca.cert_der)) {
            Err(IndexError::BadSignature(why)) => assert!(why.contains("chain"), "{why}"),
            other => panic!("{label}: {other:?}"),
        }
    }
}

#[test]
fn tampered_or_broken_p7m_is_an_error() {
    let p = pki();
    let anchors = [p.ca.cert_der.clone()];
    let ldif = entries_to_ldif(&[two_cert_entry()]);
    let forms = signed_forms(&ldif);
    let der = &forms[0].1;
    let at = der
        .windows(12)
        .position(|w| w == b"mailReceipt:")
        .expect("the LDIF is inside");
    let mut tampered = der.clone();
    tampered[at + 14] ^= 0x01;
    match parse_signed_ldif(&tampered, &anchors) {
        Err(IndexError::BadSignature(why)) => assert!(why.contains("integrity"), "{why}"),
        other => panic!("{other:?}"),
    }
    for cut in [0, 1, 10, der.len() / 2, der.len() - 1] {
        assert!(
            parse_signed_ldif(&der[..cut], &anchors).is_err(),
            "cut {cut}"
        );
    }
    assert!(parse_signed_ldif(ldif.as_bytes(), &anchors).is_err());
    assert!(parse_signed_ldif(b"\x00\x01\x02", &anchors).is_err());
    // a detached signature carries no index
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("index.ldif"), &ldif).unwrap();
    std::fs::write(d.join("leaf.pem"), &p.leaf.cert_pem).unwrap();
    std::fs::write(d.join("leaf.key"), &p.leaf.key_pkcs8_pem).unwrap();
    openssl(
        &[
            "cms",
            "-sign",
            "-binary",
            "-in",
            "index.ldif",
            "-signer",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-outform",
            "DER",
            "-out",
            "detached.p7s",
        ],
        d,
    );
    let detached = std::fs::read(d.join("detached.p7s")).unwrap();
    assert!(matches!(
        parse_signed_ldif(&detached, &anchors),
        Err(IndexError::Smime(_))
    ));
}
