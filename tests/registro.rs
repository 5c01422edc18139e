//! The registro dei log: the timeline of a real transaction, receipts reproduced byte
//! for byte, tamper evidence, rotation with an injected clock, and a crash mid-rotation.

mod common;
mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use pecbox::pec::classify::classify;
use pecbox::registro::{month_minus, month_start, Event, EventKind, Registro};
use pecbox::store::{Mailbox, OrdinaryMailPolicy, Store, INBOX};
use support::*;

#[test]
fn timeline_of_a_message_and_its_receipt_reproduced() {
    let (mut alfa, mut beta) = two_providers("");
    let alice = alfa.add_mailbox("alice");
    let bob = beta.add_mailbox("bob");
    alfa.start();
    beta.start();
    let (ok, out) = alfa.send(&alice, &["--to", &bob, "--subject", "registro"]);
    assert!(ok, "{out}");
    let inbox = alfa.wait_for(&alice, 2, Duration::from_secs(30));
    assert_eq!(inbox.len(), 2);
    let accettazione = inbox
        .iter()
        .find(|m| subject(m).starts_with("ACCETTAZIONE"))
        .unwrap();
    let c = classify(accettazione);
    let id = c.daticert.unwrap().identificativo;
    let receipt_id = c.message_id.unwrap();
    // The presa in carico may still be on its way.
    let mut timeline = String::new();
    for _ in 0..50 {
        timeline = alfa.run_ok(&["log", "show", &id], None);
        if timeline.contains("presa-in-carico-ricevuta") && timeline.contains("consegna-ricevuta") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for step in [
        "accettazione",
        "busta-emessa",
        "inoltro",
        "presa-in-carico-ricevuta",
        "consegna-ricevuta",
    ] {
        assert!(timeline.contains(step), "{step} missing:\n{timeline}");
    }
    assert!(timeline.contains(&bob), "{timeline}");
    let pos = |s: &str| timeline.find(s).unwrap();
    assert!(
        pos("accettazione") < pos("busta-emessa") && pos("busta-emessa") < pos("consegna-ricevuta")
    );
    // Beta's side of the same transaction.
    let beta_timeline = beta.run_ok(&["log", "show", &id], None);
    for step in [
        "busta-ricevuta",
        "presa-in-carico-emessa",
        "consegna-emessa",
    ] {
        assert!(
            beta_timeline.contains(step),
            "{step} missing:\n{beta_timeline}"
        );
    }

    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("ricevuta.eml");
    alfa.run_ok(
        &[
            "log",
            "receipt",
            &receipt_id,
            "--out",
            file.to_str().unwrap(),
        ],
        None,
    );
    let kept = std::fs::read(&file).unwrap();
    assert_eq!(
        kept, *accettazione,
        "the kept receipt is the delivered one, byte for byte"
    );
    assert!(common::openssl_verify(&file, &alfa.ca_path()).ok);
    let verify = common::run(
        pecbox()
            .args(["verify", "--ca"])
            .arg(alfa.ca_path())
            .arg(&file),
    );
    assert_eq!(verify.code, Some(0), "{}", verify.stdout);

    let json = alfa.run_ok(
        &[
            "log",
            "search",
            "--sender",
            &alice,
            "--kind",
            "accettazione",
            "--json",
        ],
        None,
    );
    let record: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(record["identificativo"], id.as_str());
    assert!(
        record["time"].as_str().unwrap().contains('+'),
        "time with its zone"
    );
    let logins = alfa.run_ok(&["log", "search", "--kind", "login"], None);
    assert!(logins.contains("smtp from 127.0.0.1"), "{logins}");
    assert_eq!(
        alfa.run_ok(&["log", "verify"], None)
            .lines()
            .next()
            .unwrap()
            .split(':')
            .next(),
        Some("registro intact")
    );
}

fn provider_store() -> (tempfile::TempDir, Store, Registro, common::TestProvider) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let registro = Registro::open(&store).unwrap();
    (
        dir,
        store,
        registro,
        common::TestProvider::new("Registro PEC", "pec.reg.test"),
    )
}

fn synthetic(n: u64, at: chrono::DateTime<Utc>) -> Vec<(Event, chrono::DateTime<Utc>)> {
    (0..n)
        .map(|i| {
            (
                Event::new(EventKind::Accettazione, "ok")
                    .identificativo(format!("id{i}@pec.reg.test"))
                    .message_id(format!("m{i}@pec.reg.test"))
                    .sender("alice@pec.reg.test")
                    .recipients(&["bob@pec.other.test".to_string()]),
                at + chrono::Duration::seconds(i as i64),
            )
        })
        .collect()
}

/// Rewrites (or with `None` deletes) the line of record `seq` in `month`'s file.
fn tamper(registro: &Registro, month: &str, seq: u64, f: impl Fn(String) -> Option<String>) {
    registro.settle().unwrap();
    let path = registro.month_dir(month).join("records.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("{{\"seq\":{seq},")))
        .unwrap_or_else(|| panic!("record {seq} not in {}", path.display()));
    match f(lines[at].clone()) {
        Some(line) => lines[at] = line,
        None => {
            lines.remove(at);
        }
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

fn line_of(registro: &Registro, month: &str, seq: u64) -> String {
    let path = registro.month_dir(month).join("records.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{{\"seq\":{seq},")))
        .unwrap()
        .to_string()
}

#[test]
fn editing_deleting_or_reordering_one_record_is_reported_with_its_sequence() {
    let (_dir, _store, registro, provider) = provider_store();
    let start = Utc.with_ymd_and_hms(2026, 3, 10, 8, 0, 0).unwrap();
    for (event, t) in synthetic(20, start) {
        registro.append(&event, t, None).unwrap();
    }
    let anchors = vec![provider.ca.cert_der.clone()];
    assert!(registro.verify(&anchors, &|_| {}).unwrap().ok());
    let month = "2026-03";

    // Edit: one byte of record 7's outcome.
    tamper(&registro, month, 7, |v| Some(v.replace("\"ok\"", "\"ko\"")));
    let report = registro.verify(&anchors, &|_| {}).unwrap();
    assert_eq!(report.broken.as_ref().map(|b| b.0), Some(7), "{report:?}");
    assert!(report.broken.unwrap().1.contains("altered"));
    tamper(&registro, month, 7, |v| Some(v.replace("\"ko\"", "\"ok\"")));
    assert!(registro.verify(&anchors, &|_| {}).unwrap().ok(), "restored");

    // Delete record 12.
    let saved = line_of(&registro, month, 12);
    tamper(&registro, month, 12, |_| None);
    let report = registro.verify(&anchors, &|_| {}).unwrap();
    assert_eq!(report.broken.as_ref().map(|b| b.0), Some(12), "{report:?}");
    assert!(report.broken.unwrap().1.contains("missing"));
    tamper(&registro, month, 11, |v| Some(format!("{v}\n{saved}")));
    assert!(registro.verify(&anchors, &|_| {}).unwrap().ok(), "restored");

    // Delete the last record: the chain falls short of the head.
    let saved = line_of(&registro, month, 20);
    tamper(&registro, month, 20, |_| None);
    let report = registro.verify(&anchors, &|_| {}).unwrap();
    assert_eq!(report.broken.as_ref().map(|b| b.0), Some(20), "{report:?}");
    assert!(report.broken.unwrap().1.contains("missing"));
    tamper(&registro, month, 19, |v| Some(format!("{v}\n{saved}")));
    assert!(registro.verify(&anchors, &|_| {}).unwrap().ok(), "restored");

    // Reorder: swap records 3 and 4.
    let path = registro.month_dir(month).join("records.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(2, 3);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let report = registro.verify(&anchors, &|_| {}).unwrap();
    assert_eq!(report.broken.as_ref().map(|b| b.0), Some(3), "{report:?}");
}

#[test]
fn rotation_keeps_exactly_30_months_and_the_chain_verifies() {
    let (_dir, store, registro, provider) = provider_store();
    store
        .add_mailbox(&Mailbox {
            address: "alice@pec.reg.test".into(),
            password_hash: String::new(),
            quota: None,
            disabled: false,
            created: 0,
            ordinary_mail: OrdinaryMailPolicy::Refuse,
        })
        .unwrap();
    let uid = store
        .append(
            "alice@pec.reg.test",
            INBOX,
            b"Subject: old\r\n\r\nkept forever\r\n",
            &[],
            0,
        )
        .unwrap();
    // 32 months of events, ending in 2028-10.
    let last = "2028-10";
    let mut events = Vec::new();
    for back in (0..32).rev() {
        let month = month_minus(last, back).unwrap();
        events.extend(synthetic(
            40,
            month_start(&month).unwrap() + chrono::Duration::days(3),
        ));
    }
    registro.append_bulk(events).unwrap();
    assert_eq!(registro.months().len(), 32);
    let now = month_start(last).unwrap() + chrono::Duration::days(20);
    let dropped = registro
        .rotate(now, 30, &provider.signer, "Registro PEC", &|_| {})
        .unwrap();
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    let months = registro.months();
    assert_eq!(months.len(), 30);
    assert_eq!(months.first().map(String::as_str), Some("2026-05"));
    let report = registro
        .verify(std::slice::from_ref(&provider.ca.cert_der), &|_| {})
        .unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records, 30 * 40);
    assert_eq!(report.checkpoints, 29, "every closed month is sealed");
    assert!(
        registro
            .checkpoints()
            .unwrap()
            .iter()
            .any(|c| c.month == "2026-03"),
        "dropped months keep their checkpoint"
    );
    assert_eq!(
        store
            .fetch("alice@pec.reg.test", INBOX, uid)
            .unwrap()
            .as_deref(),
        Some(&b"Subject: old\r\n\r\nkept forever\r\n"[..]),
        "rotation never touches a mailbox"
    );
    // An exported month verifies on its own, and fails once edited.
    let export = registro
        .export("2027-01", &provider.signer, "Registro PEC")
        .unwrap();
    let report =
        pecbox::registro::verify_export(&export, std::slice::from_ref(&provider.ca.cert_der))
            .unwrap();
    assert!(report.ok(), "{report:?}");
    let edited = String::from_utf8(export).unwrap().replacen(
        "alice@pec.reg.test",
        "mallory@pec.reg.test",
        1,
    );
    let report = pecbox::registro::verify_export(
        edited.as_bytes(),
        std::slice::from_ref(&provider.ca.cert_der),
    )
    .unwrap();
    assert!(!report.ok());
}

#[test]
fn kill_9_during_rotation_leaves_a_verifiable_registro() {
    let b = PecBox::new("Rotate PEC", "pec.rot.test", "");
    b.init();
    b.add_mailbox("alice");
    let store_dir = b.dir.path().join("data/store");
    let last = "2029-06";
    {
        let store = Store::open(&store_dir).unwrap();
        let registro = Registro::open(&store).unwrap();
        let mut events = Vec::new();
        for back in (0..60).rev() {
            let month = month_minus(last, back).unwrap();
            events.extend(synthetic(
                400,
                month_start(&month).unwrap() + chrono::Duration::days(2),
            ));
        }
        registro.append_bulk(events).unwrap();
        store.flush().unwrap();
    }
    let now = (month_start(last).unwrap() + chrono::Duration::days(10)).to_rfc3339();
    let mut child = b
        .cmd()
        .args(["log", "rotate", "--now", &now])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let _ = child.kill();
    let _ = child.wait();

    let store = Store::open(&store_dir).unwrap();
    let registro = Registro::open(&store).unwrap();
    let months = registro.months();
    assert!(months.len() >= 30 && months.len() <= 60, "{}", months.len());
    assert_eq!(months.last().map(String::as_str), Some(last));
    let ca = std::fs::read_to_string(b.ca_path()).unwrap();
    let anchors = pecbox::smime::pem_certificates(&ca).unwrap();
    let report = registro.verify(&anchors, &|_| {}).unwrap();
    assert!(
        report.ok(),
        "old or new state, never a broken one: {report:?}"
    );
    drop(registro);
    drop(store);
    // Finishing the rotation afterwards reaches the new state.
    let out = Command::new(env!("CARGO_BIN_EXE_pecbox"))
        .args([
            "--config",
            b.config_path().to_str().unwrap(),
            "log",
            "rotate",
            "--now",
            &now,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify = b.run_ok(&["log", "verify"], None);
    assert!(verify.starts_with("registro intact"), "{verify}");
    let store = Store::open(&store_dir).unwrap();
    assert_eq!(Registro::open(&store).unwrap().months().len(), 30);
}
