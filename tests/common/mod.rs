//! Shared fixtures: a test provider with its CA and signing certificate, an original
//! message, every kind built and signed, and helpers to run openssl and xmllint.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use pecbox::pec::daticert::{Errore, TipoDestinatario, TipoRicevuta};
use pecbox::pec::kind::{MessageKind, TimeoutStage};
use pecbox::pec::messages::{self, Gestore, UnsignedMessage};
use pecbox::pec::original::{rewrite_message_id, Certified, OriginalHeaders};
use pecbox::pec::timestamp::PecTime;
use pecbox::smime::certs::{self, GeneratedCert};
use pecbox::smime::Signer;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Real providers' messages, with their provenance in SOURCES.md.
pub fn samples_dir() -> PathBuf {
    Path::new(ROOT).join("tests/data/pec-samples")
}

pub fn dtd() -> PathBuf {
    Path::new(ROOT).join("docs/spec/daticert.dtd")
}

pub struct TestProvider {
    pub ca: GeneratedCert,
    pub signing: GeneratedCert,
    pub signer: Signer,
    pub gestore: Gestore,
    pub dir: tempfile::TempDir,
}

impl TestProvider {
    pub fn new(name: &str, domain: &str) -> Self {
        let not_before = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let not_after = Utc::now() + Duration::days(365);
        let ca = certs::generate_ca(name, not_before, not_after).expect("CA");
        let email = format!("posta-certificata@{domain}");
        let signing =
            certs::generate_signing_cert(&ca, name, &email, not_before, not_after).expect("cert");
        let chain = format!("{}{}", signing.cert_pem, ca.cert_pem);
        let signer = Signer::from_pem(&chain, &signing.key_pkcs8_pem).expect("signer");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).unwrap();
        Self {
            ca,
            signing,
            signer,
            gestore: Gestore {
                name: name.to_string(),
                service_address: email,
            },
            dir,
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn sign(&self, message: &UnsignedMessage) -> Vec<u8> {
        pecbox::smime::build_signed_message(
            &self.signer,
            &message.header_block(),
            &message.entity,
            message.date.utc(),
        )
        .expect("signing")
    }
}

pub const ORIGINAL: &str = "Received: from client.example (client [192.0.2.1])\r\n\tby mx.pec.example; Mon, 2 Mar 2026 10:00:00 +0100\r\n\
From: Alice Rossi <alice@pec.example>\r\n\
To: Bob <bob@pec.other>, carla@gmail.example\r\n\
Cc: dan@pec.other\r\n\
Subject: Fattura n. 12 =?UTF-8?Q?perch=C3=A9?=\r\n\
Message-ID: <client-123@alice.example>\r\n\
X-TipoRicevuta: completa\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nIn allegato la fattura.\r\n\
--b1\r\nContent-Type: application/pdf; name=\"fattura.pdf\"\r\nContent-Disposition: attachment; filename=\"fattura.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcOkw7zDtsOfCg==\r\n\
--b1--\r\n";

pub const IDENTIFICATIVO: &str = "opec-test.20260302100000.00001@pec.example";

pub fn at() -> PecTime {
    PecTime::italian(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 5).unwrap())
}

pub fn classify_index(address: &str) -> TipoDestinatario {
    if address.ends_with("@pec.example") || address.ends_with("@pec.other") {
        TipoDestinatario::Certificato
    } else {
        TipoDestinatario::Esterno
    }
}

pub fn certified() -> (OriginalHeaders, Certified) {
    let headers = OriginalHeaders::parse(ORIGINAL.as_bytes()).expect("headers");
    let certified = headers.certify(IDENTIFICATIVO, classify_index);
    (headers, certified)
}

/// The original as it travels inside the busta.
pub fn postacert() -> Vec<u8> {
    let (headers, _) = certified();
    rewrite_message_id(
        ORIGINAL.as_bytes(),
        IDENTIFICATIVO,
        headers.message_id.as_deref(),
    )
}

/// One message of the given kind, built by the pecbox builders.
pub fn build(kind: MessageKind, gestore: &Gestore) -> UnsignedMessage {
    let (_, c) = certified();
    let t = at();
    let id = "receipt-1@pec.example";
    let rcpt = "bob@pec.other";
    let receipt_box = "posta-certificata@pec.other";
    match kind {
        MessageKind::Accettazione => messages::accettazione(gestore, &c, id, t),
        MessageKind::NonAccettazione => {
            messages::non_accettazione(gestore, &c, "destinatario in Bcc", id, t)
        }
        MessageKind::NonAccettazioneVirus => {
            messages::non_accettazione_virus(gestore, &c, "Eicar-Test-Signature", id, t)
        }
        MessageKind::BustaTrasporto => messages::busta_trasporto(
            gestore,
            &c,
            &postacert(),
            Some(TipoRicevuta::Completa),
            t,
        ),
        MessageKind::PresaInCarico => messages::presa_in_carico(
            gestore,
            &c,
            &["bob@pec.other".into(), "dan@pec.other".into()],
            receipt_box,
            id,
            t,
        ),
        MessageKind::BustaAnomalia => messages::busta_anomalia(
            gestore,
            b"From: spam@ordinary.example\r\nTo: bob@pec.other\r\nSubject: offerta\r\nMessage-ID: <o1@ordinary.example>\r\n\r\nciao\r\n",
            "messaggio non proveniente da un gestore di posta certificata",
            id,
            t,
        ),
        MessageKind::RilevazioneVirus => messages::rilevazione_virus(
            gestore,
            &c,
            rcpt,
            "Eicar-Test-Signature",
            receipt_box,
            id,
            t,
        ),
        MessageKind::AvvenutaConsegna(tipo) => {
            messages::avvenuta_consegna(gestore, &c, rcpt, tipo, &postacert(), id, t)
        }
        MessageKind::MancataConsegna => messages::mancata_consegna(
            gestore,
            &c,
            rcpt,
            Errore::NoDest,
            "5.1.1 - indirizzo non valido",
            id,
            t,
        ),
        MessageKind::MancataConsegnaVirus => {
            messages::mancata_consegna_virus(gestore, &c, rcpt, "Eicar-Test-Signature", id, t)
        }
        MessageKind::SuperamentoTempoMassimo(stage) => {
            messages::tempo_massimo(gestore, &c, rcpt, stage, id, t)
        }
    }
}

pub fn all_stages_built() -> Vec<MessageKind> {
    let mut kinds = MessageKind::BUILT.to_vec();
    kinds.retain(|k| *k != MessageKind::SuperamentoTempoMassimo(TimeoutStage::Unspecified));
    kinds
}

pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("command runs");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// `openssl smime -verify -CAfile ca` over a message file.
pub fn openssl_verify(message: &Path, ca: &Path) -> Run {
    run(Command::new("openssl").args([
        "smime",
        "-verify",
        "-in",
        message.to_str().unwrap(),
        "-CAfile",
        ca.to_str().unwrap(),
        "-out",
        "/dev/null",
    ]))
}

pub fn pecbox() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pecbox"));
    cmd.env_remove("PECBOX_CONFIG");
    cmd
}
