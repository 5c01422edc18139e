//! Every kind pecbox builds: signed by pecbox, accepted by `openssl smime -verify`, its
//! daticert.xml valid against the DTD with xmllint, classified back as itself, and
//! judged valid by `pecbox verify`.

mod common;

use std::process::Command;

use common::*;
use mail_parser::{MessageParser, MimeHeaders};
use pecbox::pec::classify::{classify, Class};
use pecbox::pec::daticert::TipoRicevuta;
use pecbox::pec::kind::{MessageKind, TimeoutStage};

fn daticert_bytes(message: &[u8]) -> Option<Vec<u8>> {
    let parsed = MessageParser::default().parse(message)?;
    parsed
        .parts
        .iter()
        .find(|p| p.attachment_name() == Some("daticert.xml"))
        .map(|p| p.contents().to_vec())
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let head = message.split("\r\n\r\n").next()?;
    head.split("\r\n")
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l.as_bytes()[name.len()] == b':'
        })
        .map(|l| l[name.len() + 1..].trim())
}

#[test]
fn every_kind_verifies_with_openssl_validates_with_xmllint_and_classifies_back() {
    let provider = TestProvider::new("Studio Rossi PEC", "pec.example");
    let dir = tempfile::tempdir().unwrap();
    for kind in all_stages_built() {
        let unsigned = build(kind, &provider.gestore);
        let signed = provider.sign(&unsigned);
        let file = dir.path().join(format!("{}.eml", kind.code()));
        std::fs::write(&file, &signed).unwrap();

        let openssl = openssl_verify(&file, &provider.ca_path());
        assert!(openssl.ok, "{kind}: openssl says {}", openssl.stderr);
        assert!(openssl.stderr.contains("Verification successful"), "{kind}");

        match daticert_bytes(&signed) {
            Some(xml) => {
                let xml_file = dir.path().join(format!("{}.xml", kind.code()));
                std::fs::write(&xml_file, xml).unwrap();
                let lint = run(Command::new("xmllint")
                    .args(["--noout", "--dtdvalid"])
                    .arg(dtd())
                    .arg(&xml_file));
                assert!(lint.ok, "{kind}: xmllint says {}", lint.stderr);
            }
            None => assert_eq!(
                kind,
                MessageKind::BustaAnomalia,
                "only the anomalia has none"
            ),
        }

        let c = classify(&signed);
        assert_eq!(c.class, Class::Pec(kind), "{kind}: {}", c.reason);
        assert!(c.problems.is_empty(), "{kind}: {:?}", c.problems);

        let verify = run(pecbox()
            .arg("verify")
            .arg("--ca")
            .arg(provider.ca_path())
            .arg(&file));
        assert_eq!(
            verify.code,
            Some(0),
            "{kind}: {}{}",
            verify.stdout,
            verify.stderr
        );
        assert!(
            verify.stdout.contains(kind.italian_name()),
            "{}",
            verify.stdout
        );
    }
}

#[test]
fn receipts_carry_the_exact_pec_headers() {
    let provider = TestProvider::new("Studio Rossi PEC", "pec.example");
    // (kind, subject prefix, To, the kind's own X- headers)
    type Expected<'a> = (MessageKind, &'a str, &'a str, &'a [(&'a str, &'a str)]);
    let expect: &[Expected] = &[
        (
            MessageKind::Accettazione,
            "ACCETTAZIONE: ",
            "alice@pec.example",
            &[("X-Ricevuta", "accettazione")],
        ),
        (
            MessageKind::NonAccettazione,
            "AVVISO DI NON ACCETTAZIONE: ",
            "alice@pec.example",
            &[("X-Ricevuta", "non-accettazione")],
        ),
        (
            MessageKind::NonAccettazioneVirus,
            "AVVISO DI NON ACCETTAZIONE PER VIRUS: ",
            "alice@pec.example",
            &[
                ("X-Ricevuta", "non-accettazione"),
                ("X-VerificaSicurezza", "errore"),
            ],
        ),
        (
            MessageKind::PresaInCarico,
            "PRESA IN CARICO: ",
            "posta-certificata@pec.other",
            &[("X-Ricevuta", "presa-in-carico")],
        ),
        (
            MessageKind::RilevazioneVirus,
            "PROBLEMA DI SICUREZZA: ",
            "posta-certificata@pec.other",
            &[
                ("X-Ricevuta", "rilevazione-virus"),
                ("X-Mittente", "alice@pec.example"),
            ],
        ),
        (
            MessageKind::AvvenutaConsegna(TipoRicevuta::Completa),
            "CONSEGNA: ",
            "alice@pec.example",
            &[("X-Ricevuta", "avvenuta-consegna")],
        ),
        (
            MessageKind::MancataConsegna,
            "AVVISO DI MANCATA CONSEGNA: ",
            "alice@pec.example",
            &[("X-Ricevuta", "errore-consegna")],
        ),
        (
            MessageKind::MancataConsegnaVirus,
            "AVVISO DI MANCATA CONSEGNA PER VIRUS: ",
            "alice@pec.example",
            &[
                ("X-Ricevuta", "errore-consegna"),
                ("X-VerificaSicurezza", "errore"),
            ],
        ),
        (
            MessageKind::SuperamentoTempoMassimo(TimeoutStage::Preavviso12h),
            "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: ",
            "alice@pec.example",
            &[("X-Ricevuta", "preavviso-errore-consegna")],
        ),
    ];
    for (kind, prefix, to, x) in expect {
        let signed = provider.sign(&build(*kind, &provider.gestore));
        let text = String::from_utf8_lossy(&signed);
        let parsed = MessageParser::default().parse(&signed[..]).unwrap();
        assert!(
            parsed.subject().unwrap().starts_with(prefix),
            "{kind}: {:?}",
            parsed.subject()
        );
        assert!(
            parsed.subject().unwrap().ends_with("Fattura n. 12 perché"),
            "{kind}"
        );
        assert_eq!(
            header(&text, "From"),
            Some("posta-certificata@pec.example"),
            "{kind}"
        );
        assert_eq!(header(&text, "To"), Some(*to), "{kind}");
        assert_eq!(
            header(&text, "Message-ID"),
            Some("<receipt-1@pec.example>"),
            "{kind}"
        );
        assert_eq!(
            header(&text, "X-Riferimento-Message-ID"),
            Some("<client-123@alice.example>"),
            "{kind}"
        );
        assert_eq!(
            header(&text, "Date"),
            Some("Mon, 02 Mar 2026 10:00:05 +0100"),
            "{kind}"
        );
        for (name, value) in x.iter() {
            assert_eq!(header(&text, name), Some(*value), "{kind}: {name}");
        }
        // Italian text in ISO-8859-1, quoted-printable, as real providers send it.
        assert!(text.contains("charset=\"iso-8859-1\""), "{kind}");
        assert!(
            text.contains("Il giorno 02/03/2026 alle ore 10:00:05 (+0100)"),
            "{kind}"
        );
        assert!(text.contains("=E8"), "{kind}: è as ISO-8859-1");
        let content_type = header(&text, "Content-Type").unwrap_or_default();
        assert!(
            content_type.starts_with("multipart/signed; protocol=\"application/pkcs7-signature\";"),
            "{kind}: {content_type}"
        );
        assert!(text.contains("micalg=sha-256"), "{kind}");
        assert!(
            !text.contains("postacert.eml") || matches!(kind, MessageKind::AvvenutaConsegna(_)),
            "{kind}"
        );
    }
}

#[test]
fn busta_di_trasporto_wraps_the_original_as_the_rules_say() {
    let provider = TestProvider::new("Studio Rossi PEC", "pec.example");
    let signed = provider.sign(&build(MessageKind::BustaTrasporto, &provider.gestore));
    let text = String::from_utf8_lossy(&signed).into_owned();
    assert_eq!(header(&text, "X-Trasporto"), Some("posta-certificata"));
    assert_eq!(header(&text, "X-TipoRicevuta"), Some("completa"));
    assert_eq!(
        header(&text, "From"),
        Some("\"Per conto di: alice@pec.example\" <posta-certificata@pec.example>")
    );
    assert_eq!(
        header(&text, "Message-ID"),
        Some(format!("<{IDENTIFICATIVO}>").as_str())
    );
    assert_eq!(
        header(&text, "Reply-To"),
        Some("alice@pec.example"),
        "inserted when absent"
    );
    assert_eq!(
        header(&text, "To"),
        Some("Bob <bob@pec.other>, carla@gmail.example"),
        "kept unchanged"
    );
    assert_eq!(header(&text, "Cc"), Some("dan@pec.other"));
    assert_eq!(
        header(&text, "Subject"),
        Some("POSTA CERTIFICATA: Fattura n. 12 =?UTF-8?Q?perch=C3=A9?="),
        "the original subject as written"
    );
    assert!(text.contains("Received: from client.example (client [192.0.2.1])\r\n\tby mx.pec.example; Mon, 2 Mar 2026 10:00:00 +0100\r\n"));
    let c = classify(&signed);
    let inner = String::from_utf8(c.postacert.unwrap()).unwrap();
    assert_eq!(
        inner.as_bytes(),
        &postacert()[..],
        "postacert.eml is the original, byte for byte"
    );
    assert!(inner.contains(&format!("Message-ID: <{IDENTIFICATIVO}>\r\n")));
    assert!(inner.contains("X-Riferimento-Message-ID: <client-123@alice.example>\r\n"));
    let d = c.daticert.unwrap();
    assert_eq!(d.ricevuta, Some(TipoRicevuta::Completa));
    assert_eq!(d.identificativo, IDENTIFICATIVO);
    assert_eq!(d.msgid.as_deref(), Some("<client-123@alice.example>"));
    let esterno: Vec<_> = d
        .destinatari
        .iter()
        .map(|r| (r.indirizzo.as_str(), r.tipo.as_str()))
        .collect();
    assert_eq!(
        esterno,
        [
            ("bob@pec.other", "certificato"),
            ("carla@gmail.example", "esterno"),
            ("dan@pec.other", "certificato")
        ]
    );
}

#[test]
fn completa_breve_sintetica_carry_what_they_should() {
    let provider = TestProvider::new("Studio Rossi PEC", "pec.example");
    let completa = classify(&provider.sign(&build(
        MessageKind::AvvenutaConsegna(TipoRicevuta::Completa),
        &provider.gestore,
    )));
    assert_eq!(completa.postacert.as_deref(), Some(&postacert()[..]));

    let sintetica = classify(&provider.sign(&build(
        MessageKind::AvvenutaConsegna(TipoRicevuta::Sintetica),
        &provider.gestore,
    )));
    assert!(sintetica.postacert.is_none());

    let breve = classify(&provider.sign(&build(
        MessageKind::AvvenutaConsegna(TipoRicevuta::Breve),
        &provider.gestore,
    )));
    let inner = String::from_utf8(breve.postacert.unwrap()).unwrap();
    // The hash is of the attachment as transmitted (its base64 text), computed here by sha1sum.
    let sha1 = run(
        Command::new("sh").args(["-c", "printf '%s' 'JVBERi0xLjQKJcOkw7zDtsOfCg==' | sha1sum"])
    );
    let expected = sha1.stdout.split_whitespace().next().unwrap().to_string();
    assert!(inner.contains("filename=\"fattura.pdf.hash\""), "{inner}");
    assert!(inner.contains(&expected), "{inner}");
    assert!(
        !inner.contains("JVBERi0xLjQK"),
        "the attachment itself is gone"
    );
    assert!(inner.contains("In allegato la fattura."), "the text stays");
    assert_eq!(breve.daticert.unwrap().ricevuta, Some(TipoRicevuta::Breve));
}

#[test]
fn cc_recipients_get_sintetica() {
    use pecbox::pec::messages::tipo_ricevuta_for;
    let (headers, _) = certified();
    assert!(headers.is_primary("bob@pec.other"));
    assert!(!headers.is_primary("dan@pec.other"));
    assert_eq!(
        tipo_ricevuta_for(Some(TipoRicevuta::Completa), false),
        TipoRicevuta::Sintetica
    );
    assert_eq!(
        tipo_ricevuta_for(Some(TipoRicevuta::Breve), true),
        TipoRicevuta::Breve
    );
    assert_eq!(tipo_ricevuta_for(None, true), TipoRicevuta::Completa);
}

#[test]
fn the_two_timeout_notices_are_told_apart() {
    let provider = TestProvider::new("Studio Rossi PEC", "pec.example");
    for stage in [TimeoutStage::Preavviso12h, TimeoutStage::Definitivo24h] {
        let kind = MessageKind::SuperamentoTempoMassimo(stage);
        let signed = provider.sign(&build(kind, &provider.gestore));
        assert_eq!(classify(&signed).kind(), Some(kind));
        let text = String::from_utf8_lossy(&signed);
        let hours = if stage == TimeoutStage::Preavviso12h {
            "12 ore"
        } else {
            "24 ore"
        };
        assert!(text.contains(hours), "{kind}");
    }
}
