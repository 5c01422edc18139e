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
    // One clock reading per transaction (pec-rules §1.3): the record's time is the
    // receipt's daticert time.
    let line = alfa.run_ok(
        &["log", "search", "--message-id", &receipt_id, "--json"],
        None,
    );
    let record: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let certified_at = classify(accettazione).daticert.unwrap().data;
    assert_eq!(
        record["time"].as_str(),
        Some(certified_at.datetime().to_rfc3339().as_str()),
        "{line}"
    );
    // The month exported through the running daemon verifies with pecbox and with the
    // auditor's script, and the daemon's copy is gone afterwards.
    let month = pecbox::registro::month_of(Utc::now());
    let export = out_dir.path().join("export.json");
    alfa.run_ok(
        &[
            "log",
            "export",
            "--month",
            &month,
            "-o",
            export.to_str().unwrap(),
        ],
        None,
    );
    let verified = common::run(
        pecbox()
            .args(["log", "verify"])
            .arg(&export)
            .arg("--ca")
            .arg(alfa.ca_path()),
    );
    assert_eq!(verified.code, Some(0), "{}", verified.stdout);
    assert!(verified.stdout.contains("intact"), "{}", verified.stdout);
    let audit = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/registro-audit.sh"
    ))
    .arg(&export)
    .arg(alfa.ca_path())
    .output()
    .unwrap();
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    let receipt_key = receipt_id
        .trim_matches(|c| c == '<' || c == '>')
        .to_ascii_lowercase();
    assert!(
        kept["receipts"].get(&receipt_key).is_some(),
        "the accettazione travels with the export"
    );
    let leftovers = std::fs::read_dir(alfa.dir.path().join("data/exports"))
        .expect("the daemon wrote the export there")
        .count();
    assert_eq!(leftovers, 0, "the daemon's export file is removed");

    // The holder knows the message by the Message-ID their client gave it.
    let client_id = out
        .lines()
        .find_map(|l| l.strip_prefix("SENT "))
        .expect("the client prints the Message-ID")
        .trim()
        .to_string();
    let kinds = |p: &PecBox| -> Vec<String> {
        p.run_ok(
            &["log", "search", "--message-id", &client_id, "--json"],
            None,
        )
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect()
    };
    let (on_alfa, on_beta) = (kinds(&alfa), kinds(&beta));
    for step in ["\"accettazione\"", "\"busta-emessa\""] {
        assert!(on_alfa.iter().any(|k| k == step), "{step}: {on_alfa:?}");
    }
    for step in ["\"busta-ricevuta\"", "\"consegna-emessa\""] {
        assert!(on_beta.iter().any(|k| k == step), "{step}: {on_beta:?}");
    }

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

/// Opens a store this process (or a killed child) just closed.
fn open_store(dir: &std::path::Path) -> Store {
    Store::open_waiting(dir, Duration::from_secs(10)).unwrap()
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
    let report = pecbox::registro::verify_export(
        export.as_slice(),
        std::slice::from_ref(&provider.ca.cert_der),
    )
    .unwrap();
    assert!(report.ok() && report.records > 0, "{report:?}");
    let exported = report.records;
    let edited = String::from_utf8(export.clone()).unwrap().replacen(
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

    // Checked as a stream: the fields may come in any order; records that do not start
    // where the checkpoint does, or a file cut short, are caught.
    let anchors = std::slice::from_ref(&provider.ca.cert_der);
    let value: serde_json::Value = serde_json::from_slice(&export).unwrap();
    let records = value["records"].as_array().unwrap();
    let reordered = |records: &[serde_json::Value]| {
        format!(
            r#"{{"records":{},"receipts":{},"month":{},"checkpoint":{},"provider":{},"format":{}}}"#,
            serde_json::Value::from(records.to_vec()),
            value["receipts"],
            value["month"],
            value["checkpoint"],
            value["provider"],
            value["format"],
        )
    };
    let report = pecbox::registro::verify_export(reordered(records).as_bytes(), anchors).unwrap();
    assert!(report.ok() && report.records == exported, "{report:?}");
    let report =
        pecbox::registro::verify_export(reordered(&records[1..]).as_bytes(), anchors).unwrap();
    let first = records[0]["seq"].as_u64().unwrap();
    assert_eq!(report.broken.map(|b| b.0), Some(first + 1));
    let cut = &export[..export.len() / 2];
    assert!(pecbox::registro::verify_export(cut, anchors).is_err());

    // An auditor without pecbox: jq, sha256sum and openssl (docs/registro-audit.sh).
    let files = tempfile::tempdir().unwrap();
    let (good, bad, ca) = (
        files.path().join("2027-01.json"),
        files.path().join("edited.json"),
        files.path().join("ca.pem"),
    );
    std::fs::write(&good, &export).unwrap();
    std::fs::write(&bad, &edited).unwrap();
    std::fs::write(&ca, &provider.ca.cert_pem).unwrap();
    let audit = |file: &std::path::Path| {
        Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/registro-audit.sh"
        ))
        .arg(file)
        .arg(&ca)
        .output()
        .unwrap()
    };
    let out = audit(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!(
        "2027-01: {exported} records, chain and signed checkpoint verified"
    )));
    let out = audit(&bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("was altered"));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn kill_9_during_rotation_leaves_a_verifiable_registro() {
    let b = PecBox::new("Rotate PEC", "pec.rot.test", "");
    b.init();
    b.add_mailbox("alice");
    let store_dir = b.dir.path().join("data/store");
    let pristine = b.dir.path().join("pristine-store");
    // After today: the mailbox's creation is already logged, and months never go back.
    // Many small months: dropping 370 of them takes long enough for a kill to land.
    let last = "2061-12";
    {
        let store = open_store(&store_dir);
        let registro = Registro::open(&store).unwrap();
        let mut events = Vec::new();
        for back in (0..400).rev() {
            let month = month_minus(last, back).unwrap();
            events.extend(synthetic(
                40,
                month_start(&month).unwrap() + chrono::Duration::days(2),
            ));
        }
        registro.append_bulk(events).unwrap();
        store.flush().unwrap();
    }
    copy_dir(&store_dir, &pristine);
    let total = {
        let store = open_store(&store_dir);
        Registro::open(&store).unwrap().months().len()
    };
    assert_eq!(total, 401, "400 synthetic months and today's");
    let now = (month_start(last).unwrap() + chrono::Duration::days(10)).to_rfc3339();
    let ca = std::fs::read_to_string(b.ca_path()).unwrap();
    let anchors = pecbox::smime::pem_certificates(&ca).unwrap();

    // Kill the rotation the moment its first month folder disappears: a kill among
    // the drops (some months gone, not all), whatever the machine's speed. Every state
    // a kill leaves must verify, and every dropped month must keep its checkpoint.
    let rotate = || {
        b.cmd()
            .args(["log", "rotate", "--now", &now])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let month_dirs = |dir: &std::path::Path| {
        std::fs::read_dir(dir.join("registro"))
            .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0)
    };
    let before = month_dirs(&store_dir);
    let mut caught_mid_way = false;
    for attempt in 0..5 {
        if attempt > 0 {
            std::fs::remove_dir_all(&store_dir).unwrap();
            copy_dir(&pristine, &store_dir);
        }
        let mut child = rotate();
        let started = std::time::Instant::now();
        while month_dirs(&store_dir) >= before
            && started.elapsed() < Duration::from_secs(60)
            && matches!(child.try_wait(), Ok(None))
        {
            std::hint::spin_loop();
        }
        let _ = child.kill();
        let _ = child.wait();
        let after = started.elapsed();

        let store = open_store(&store_dir);
        let registro = Registro::open(&store).unwrap();
        let months = registro.months();
        assert!(
            months.len() >= 30 && months.len() <= total,
            "{}",
            months.len()
        );
        assert_eq!(months.last().map(String::as_str), Some(last));
        let report = registro.verify(&anchors, &|_| {}).unwrap();
        assert!(
            report.ok(),
            "killed after {after:?}: old or new state, never a broken one: {report:?}"
        );
        let sealed = registro.checkpoints().unwrap().len();
        assert!(
            sealed >= total - months.len(),
            "{sealed} checkpoints, {} months, killed after {after:?}",
            months.len()
        );
        eprintln!(
            "killed after {after:?}: {} months, {sealed} sealed",
            months.len()
        );
        if months.len() > 30 && months.len() < total {
            caught_mid_way = true;
            break;
        }
    }
    assert!(caught_mid_way, "no kill landed during the rotation");

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
    let store = open_store(&store_dir);
    let registro = Registro::open(&store).unwrap();
    assert_eq!(registro.months().len(), 30);

    // What an operator sees when a month file was edited: exit 1 and the record.
    let month = registro.months()[10].clone();
    let path = registro.month_dir(&month).join("records.jsonl");
    drop((registro, store));
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().nth(3).unwrap();
    let seq = serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"]
        .as_u64()
        .unwrap();
    let edited = line.replace("\"outcome\":\"ok\"", "\"outcome\":\"KO\"");
    std::fs::write(&path, text.replace(line, &edited)).unwrap();
    let out = b.cmd().args(["log", "verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!(
            "registro broken at record {seq}: record {seq} was altered"
        )),
        "{said}"
    );

    // Something that is not an export: exit 2 and why, nothing else.
    let junk = b.dir.path().join("junk.json");
    for bytes in [
        &b"\x00\xff garbage"[..],
        b"{\"format\":\"pecbox-registro/1\"",
    ] {
        std::fs::write(&junk, bytes).unwrap();
        let out = b
            .cmd()
            .args(["log", "verify", junk.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a registro export"));
    }
    // Asking for what is not there: exit 1 and why.
    for (args, why) in [
        (
            &["log", "search", "--kind", "bogus"][..],
            "unknown kind bogus; one of: accettazione",
        ),
        (
            &["log", "receipt", "nope@pec.rot.test"][..],
            "no receipt with Message-ID",
        ),
        (&["log", "show", "nope@pec.rot.test"][..], "no transaction"),
        (
            &["log", "export", "--month", "1999-13"][..],
            "no records for 1999-13",
        ),
    ] {
        let out = b.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(why), "{args:?}: {said}");
    }
    assert_eq!(
        std::fs::read_dir(b.dir.path().join("data/exports")).map_or(0, |d| d.count()),
        0,
        "a refused export leaves no file behind"
    );
}

fn found(registro: &Registro, message_id: &str) -> usize {
    registro
        .search(&pecbox::registro::Query {
            message_id: Some(message_id.into()),
            ..Default::default()
        })
        .unwrap()
        .len()
}

#[test]
fn records_survive_a_crash_at_every_point_between_the_store_and_the_month_files() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let start = Utc.with_ymd_and_hms(2026, 3, 10, 8, 0, 0).unwrap();
    let events = synthetic(8, start);
    let provider = common::TestProvider::new("Registro PEC", "pec.reg.test");
    let anchors = vec![provider.ca.cert_der.clone()];
    let month_dir = |registro: &Registro| registro.month_dir("2026-03");

    // Committed in the store, never moved to the files (killed before settling).
    {
        let store = open_store(&store_dir);
        let registro = Registro::open(&store).unwrap();
        for (event, t) in &events[..5] {
            registro.append(event, *t, None).unwrap();
        }
        store.flush().unwrap();
        assert!(!month_dir(&registro).join("records.jsonl").exists());
    }
    let store = open_store(&store_dir);
    let registro = Registro::open(&store).unwrap();
    assert_eq!(found(&registro, "m4@pec.reg.test"), 1);
    let report = registro.verify(&anchors, &|_| {}).unwrap();
    assert!(report.ok() && report.records == 5, "{report:?}");

    // The files half written: record 6 torn mid-line, its index entries never made.
    registro.append(&events[5].0, events[5].1, None).unwrap();
    store.flush().unwrap();
    let records = month_dir(&registro).join("records.jsonl");
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&records)
        .unwrap();
    std::io::Write::write_all(&mut torn, b"{\"seq\":6,\"time\":\"2026-03-1").unwrap();
    drop((registro, store));
    let store = open_store(&store_dir);
    let registro = Registro::open(&store).unwrap();
    assert_eq!(found(&registro, "m5@pec.reg.test"), 1);
    let report = registro.verify(&anchors, &|_| {}).unwrap();
    assert!(report.ok() && report.records == 6, "{report:?}");

    // Records on disk whose index entries were lost: indexed again at opening.
    registro.append(&events[6].0, events[6].1, None).unwrap();
    registro.settle().unwrap();
    for name in ["index.log", "index.sorted"] {
        let _ = std::fs::remove_file(month_dir(&registro).join(name));
    }
    drop((registro, store));
    let store = open_store(&store_dir);
    let registro = Registro::open(&store).unwrap();
    for i in 0..7 {
        assert_eq!(found(&registro, &format!("<m{i}@pec.reg.test>")), 1, "m{i}");
    }

    // The clock goes back a month: the record stays in the newer month (the chain
    // walks months in order) and a search by its own time still finds it.
    let back = start - chrono::Duration::days(20);
    registro.append(&events[7].0, back, None).unwrap();
    assert_eq!(registro.months(), ["2026-03"]);
    let february = registro
        .search(&pecbox::registro::Query {
            since: Some(month_start("2026-02").unwrap()),
            until: Some(month_start("2026-03").unwrap() - chrono::Duration::seconds(1)),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(february.len(), 1);
    assert_eq!(february[0].seq, 8);
    let report = registro.verify(&anchors, &|_| {}).unwrap();
    assert!(report.ok() && report.records == 8, "{report:?}");
}

#[test]
fn a_store_from_before_the_month_files_is_migrated_at_opening() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let provider = common::TestProvider::new("Registro PEC", "pec.reg.test");
    let anchors = vec![provider.ca.cert_der.clone()];
    let march = Utc.with_ymd_and_hms(2026, 3, 10, 8, 0, 0).unwrap();
    let april = Utc.with_ymd_and_hms(2026, 4, 10, 8, 0, 0).unwrap();
    let receipt = b"Subject: ACCETTAZIONE: x\r\n\r\nsigned bytes\r\n".to_vec();
    {
        let store = open_store(&store_dir);
        let registro = Registro::open(&store).unwrap();
        for (event, t) in synthetic(10, march) {
            let kept = (t == march).then_some(receipt.as_slice());
            registro.append(&event, t, kept).unwrap();
        }
        for (event, t) in synthetic(5, april) {
            registro.append(&event, t, None).unwrap();
        }
        registro.settle().unwrap();
        // Rewrite what the files hold the way the earlier layout kept it in sled.
        for month in ["2026-03", "2026-04"] {
            let tree = store
                .raw_db()
                .open_tree(format!("registro-{month}"))
                .unwrap();
            let text =
                std::fs::read_to_string(registro.month_dir(month).join("records.jsonl")).unwrap();
            for line in text.lines() {
                let record: pecbox::registro::Record = serde_json::from_str(line).unwrap();
                let mut key = vec![b'r'];
                key.extend_from_slice(&record.seq.to_be_bytes());
                tree.insert(key, line.as_bytes()).unwrap();
            }
        }
        store
            .raw_db()
            .open_tree("registro-2026-03")
            .unwrap()
            .insert(b"cm0@pec.reg.test", pecbox::registro::compress(&receipt))
            .unwrap();
        std::fs::remove_dir_all(store_dir.join("registro")).unwrap();
        store.flush().unwrap();
    }
    let store = open_store(&store_dir);
    let registro = Registro::open(&store).unwrap();
    assert_eq!(registro.months(), ["2026-03", "2026-04"]);
    assert!(store
        .raw_db()
        .tree_names()
        .iter()
        .all(|n| !n.starts_with(b"registro-")));
    let report = registro.verify(&anchors, &|_| {}).unwrap();
    assert!(report.ok() && report.records == 15, "{report:?}");
    assert_eq!(
        registro.receipt("<m0@pec.reg.test>").unwrap(),
        Some(receipt)
    );
    assert_eq!(found(&registro, "m3@pec.reg.test"), 2, "one in each month");
    // New events follow the migrated chain.
    registro
        .append(&synthetic(1, april).remove(0).0, april, None)
        .unwrap();
    let report = registro.verify(&anchors, &|_| {}).unwrap();
    assert!(report.ok() && report.records == 16, "{report:?}");
}

#[test]
fn verify_and_search_while_records_keep_coming_report_no_false_break() {
    let (_dir, _store, registro, provider) = provider_store();
    let anchors = vec![provider.ca.cert_der.clone()];
    let start = Utc.with_ymd_and_hms(2026, 3, 10, 8, 0, 0).unwrap();
    let events = synthetic(3000, start);
    for (event, t) in &events[..100] {
        registro.append(event, *t, None).unwrap();
    }
    let writer = {
        let registro = registro.clone();
        let rest = events[100..].to_vec();
        std::thread::spawn(move || {
            for (i, (event, t)) in rest.iter().enumerate() {
                registro.append(event, *t, None).unwrap();
                if i % 7 == 0 {
                    registro.settle().unwrap();
                }
            }
        })
    };
    let mut rounds = 0;
    while !writer.is_finished() || rounds < 3 {
        let report = registro.verify(&anchors, &|_| {}).unwrap();
        assert!(report.ok(), "round {rounds}: {report:?}");
        assert_eq!(found(&registro, "m50@pec.reg.test"), 1);
        rounds += 1;
    }
    writer.join().unwrap();
    let report = registro.verify(&anchors, &|_| {}).unwrap();
    assert!(report.ok() && report.records == 3000, "{report:?}");
}

#[test]
fn a_search_on_several_fields_returns_what_matches_them_all() {
    let (_dir, _store, registro, _provider) = provider_store();
    let t = Utc.with_ymd_and_hms(2026, 3, 10, 8, 0, 0).unwrap();
    for (i, who) in ["alice", "bob", "alice", "carol", "alice"]
        .iter()
        .enumerate()
    {
        let address = format!("{who}@pec.reg.test");
        registro
            .append(
                &Event::new(EventKind::Login, if i == 2 { "failed" } else { "ok" })
                    .sender(&address)
                    .detail("imap from 192.0.2.7"),
                t + chrono::Duration::seconds(i as i64),
                None,
            )
            .unwrap();
        registro
            .append(
                &Event::new(EventKind::Accettazione, "ok")
                    .identificativo(format!("id{i}@pec.reg.test"))
                    .message_id(format!("m{i}@pec.reg.test"))
                    .sender(&address)
                    .recipients(&["dest@pec.other.test".to_string()]),
                t + chrono::Duration::seconds(i as i64),
                None,
            )
            .unwrap();
    }
    let search = |q: pecbox::registro::Query| -> Vec<(u64, String)> {
        registro
            .search(&q)
            .unwrap()
            .into_iter()
            .map(|r| (r.seq, r.event.kind.unwrap().as_str().to_string()))
            .collect()
    };
    let logins = search(pecbox::registro::Query {
        sender: Some("ALICE@pec.reg.test".into()),
        kind: Some(EventKind::Login),
        ..Default::default()
    });
    assert_eq!(
        logins,
        [
            (1, "login".into()),
            (5, "login".into()),
            (9, "login".into())
        ]
    );
    let one = search(pecbox::registro::Query {
        sender: Some("alice@pec.reg.test".into()),
        recipient: Some("dest@pec.other.test".into()),
        message_id: Some("<m4@pec.reg.test>".into()),
        ..Default::default()
    });
    assert_eq!(one, [(10, "accettazione".into())]);
    let none = search(pecbox::registro::Query {
        sender: Some("bob@pec.reg.test".into()),
        message_id: Some("m4@pec.reg.test".into()),
        ..Default::default()
    });
    assert!(none.is_empty());
}

#[test]
fn a_record_takes_the_clock_reading_of_its_step() {
    let (_dir, _store, registro, _provider) = provider_store();
    let step = pecbox::pec::timestamp::PecTime::italian(
        Utc.with_ymd_and_hms(2026, 3, 10, 8, 0, 0).unwrap(),
    );
    let seq = registro
        .append(
            &Event::new(EventKind::Accettazione, "ok")
                .message_id("m@pec.reg.test")
                .at(&step),
            step.utc() + chrono::Duration::seconds(3),
            None,
        )
        .unwrap();
    let records = registro.search(&Default::default()).unwrap();
    assert_eq!(records[0].seq, seq);
    assert_eq!(records[0].time, "2026-03-10T09:00:00+01:00");
    assert_eq!(records[0].time, step.datetime().to_rfc3339());
}
