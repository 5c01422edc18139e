//! Property: for arbitrary senders, recipient lists, subjects and attachments, an
//! original written by an independent library (mail-builder) goes through the access
//! point's certification, the busta and the receipts, is signed, parsed and classified,
//! and the same facts come back out.

mod common;

use common::TestProvider;
use mail_builder::headers::address::Address;
use mail_builder::MessageBuilder;
use pecbox::pec::classify::{classify, Class};
use pecbox::pec::daticert::{TipoDestinatario, TipoRicevuta};
use pecbox::pec::kind::MessageKind;
use pecbox::pec::messages;
use pecbox::pec::original::{rewrite_message_id, OriginalHeaders};
use pecbox::pec::timestamp::PecTime;
use proptest::prelude::*;

fn local_part() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9._-]{0,20}[a-z0-9]".prop_map(|s| s.replace("..", "."))
}

fn address() -> impl Strategy<Value = (String, bool)> {
    (local_part(), prop::bool::ANY).prop_map(|(l, pec)| {
        let domain = if pec {
            "pec.other.test"
        } else {
            "mail.example"
        };
        (format!("{l}@{domain}"), pec)
    })
}

fn subject() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,60}",
        "\\PC{0,40}",
        "[àèéìòù€ a-z]{1,300}",
        "[A-Za-z]{1,12}( [A-Za-z]{1,12}){10,30}",
    ]
    .prop_map(|s| s.trim().to_string())
}

fn attachments() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop::collection::vec(
        (
            "[a-z]{1,12}\\.(pdf|xml|txt)",
            prop::collection::vec(any::<u8>(), 0..2048),
        ),
        0..3,
    )
}

proptest! {
    // 48 cases by default; PROPTEST_CASES=N for a longer hunt.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
    ))]

    #[test]
    fn build_sign_parse_classify_gives_back_the_facts(
        sender in local_part(),
        to in prop::collection::vec(address(), 1..4),
        cc in prop::collection::vec(address(), 0..3),
        subject in subject(),
        files in attachments(),
        breve in prop::bool::ANY,
    ) {
        thread_local!(static PROVIDER: TestProvider = TestProvider::new("Prop PEC", "pec.prop.test"));
        let sender = format!("{sender}@pec.prop.test");
        let mut builder = MessageBuilder::new()
            .from(Address::new_address(None::<&str>, sender.clone()))
            .to(to.iter().map(|(a, _)| Address::new_address(None::<&str>, a.clone())).collect::<Vec<_>>())
            .subject(subject.clone())
            .message_id("client-1@prop.test")
            .text_body("corpo del messaggio");
        if !cc.is_empty() {
            builder = builder.cc(cc.iter().map(|(a, _)| Address::new_address(None::<&str>, a.clone())).collect::<Vec<_>>());
        }
        for (name, bytes) in &files {
            builder = builder.attachment("application/octet-stream", name.clone(), bytes.clone());
        }
        let original = builder.write_to_vec().unwrap();

        let headers = OriginalHeaders::parse(&original).unwrap();
        let id = "opec.prop.1@pec.prop.test";
        let certified = headers.certify(id, |a| if a.ends_with("@pec.other.test") { TipoDestinatario::Certificato } else { TipoDestinatario::Esterno });
        let inner = rewrite_message_id(&original, id, headers.message_id.as_deref());
        let t = PecTime::now();

        PROVIDER.with(|p| {
            let busta = p.sign(&messages::busta_trasporto(&p.gestore, &certified, &inner, None, t));
            let c = classify(&busta);
            prop_assert_eq!(&c.class, &Class::Pec(MessageKind::BustaTrasporto), "{}", c.reason);
            let d = c.daticert.clone().unwrap();
            prop_assert_eq!(&d.mittente, &sender);
            let expected: Vec<(String, TipoDestinatario)> = to.iter().chain(&cc)
                .map(|(a, pec)| (a.clone(), if *pec { TipoDestinatario::Certificato } else { TipoDestinatario::Esterno }))
                .collect();
            let got: Vec<(String, TipoDestinatario)> = d.destinatari.iter().map(|r| (r.indirizzo.clone(), r.tipo)).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(d.oggetto.as_deref().unwrap_or(""), subject.as_str());
            prop_assert_eq!(d.identificativo.as_str(), id);
            prop_assert_eq!(d.msgid.as_deref(), Some("<client-1@prop.test>"));
            prop_assert_eq!(c.postacert.as_deref(), Some(&inner[..]));
            let parsed_subject = c.subject.clone().unwrap_or_default();
            prop_assert_eq!(parsed_subject, format!("POSTA CERTIFICATA: {subject}").trim_end().to_string());

            let tipo = if breve { TipoRicevuta::Breve } else { TipoRicevuta::Completa };
            let receipt = p.sign(&messages::avvenuta_consegna(&p.gestore, &certified, &to[0].0, tipo, &inner, "r1@pec.prop.test", t));
            let r = classify(&receipt);
            prop_assert_eq!(&r.class, &Class::Pec(MessageKind::AvvenutaConsegna(tipo)), "{}", r.reason);
            let attached = String::from_utf8_lossy(r.postacert.as_deref().unwrap()).into_owned();
            let hashes = attached.matches(".hash\"").count();
            if breve {
                prop_assert_eq!(hashes, 2 * files.len(), "name= and filename= per attachment");
            } else {
                prop_assert_eq!(hashes, 0);
            }
            let rd = r.daticert.unwrap();
            prop_assert_eq!(rd.consegna.as_deref(), Some(to[0].0.as_str()));
            prop_assert_eq!(rd.oggetto, d.oggetto);

            let acc = classify(&p.sign(&messages::accettazione(&p.gestore, &certified, "a1@pec.prop.test", t)));
            prop_assert_eq!(acc.kind(), Some(MessageKind::Accettazione));
            prop_assert_eq!(acc.subject.unwrap_or_default(), format!("ACCETTAZIONE: {subject}").trim_end().to_string());
            Ok(())
        })?;
    }
}
