//! The registro at full size: 30 months × 1 000 messages a day, six events each
//! (5.4 M events), then `search` by Message-ID and by sender + month, in process and
//! as `pecbox log search` (a fresh process on the closed store, after dropping the
//! page cache when allowed, i.e. as root), then the whole chain check.
//! `REGISTRO_EVENTS=N` scales it down; the store stays in a temporary folder.
//! Run: `cargo bench --bench registro`.

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use pecbox::registro::{month_of, Event, EventKind, Query, Registro};
use pecbox::store::Store;

fn main() {
    let total: u64 = std::env::var("REGISTRO_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30 * 30 * 1000 * 6);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let registro = Registro::open(&store).expect("registro");
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let span = Duration::days(30 * 30).num_seconds() as u64;
    let kinds = [
        EventKind::Accettazione,
        EventKind::BustaEmessa,
        EventKind::Inoltro,
        EventKind::PresaInCaricoRicevuta,
        EventKind::ConsegnaRicevuta,
        EventKind::Login,
    ];
    let messages = total / kinds.len() as u64;
    let events = (0..total).map(|i| {
        let message = i / kinds.len() as u64;
        let at = start + Duration::seconds((message * span / messages.max(1)) as i64);
        let event = Event::new(kinds[(i % kinds.len() as u64) as usize], "ok")
            .identificativo(format!("pecbox.{message:09}@pec.bench.test"))
            .message_id(format!("m{i:010}@pec.bench.test"))
            .sender(format!("holder{:03}@pec.bench.test", message % 500))
            .recipients(&[format!("dest{:04}@pec.other.test", message % 5000)])
            .subject(format!("Fattura {message}"))
            .provider("Bench PEC");
        (event, at)
    });
    let t = Instant::now();
    let written = registro.append_bulk(events).expect("append");
    store.flush().expect("flush");
    let write_secs = t.elapsed().as_secs_f64();
    let bytes = pecbox::store::dir_size(dir.path());
    println!(
        "wrote {written} events in {write_secs:.1} s ({:.0} events/s); store {:.1} MB, {:.0} MB per million events; {} months",
        written as f64 / write_secs,
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / (written as f64 / 1e6),
        registro.months().len()
    );

    let probe = written / 2;
    let t = Instant::now();
    let found = registro
        .search(&Query {
            message_id: Some(format!("m{probe:010}@pec.bench.test")),
            ..Query::default()
        })
        .expect("search");
    println!(
        "search by Message-ID: {} record(s) in {:.3} s",
        found.len(),
        t.elapsed().as_secs_f64()
    );
    let middle = start + Duration::days(15 * 30);
    let month = month_of(middle);
    let since = pecbox::registro::month_start(&month).unwrap();
    let until = since + Duration::days(31);
    let t = Instant::now();
    let found = registro
        .search(&Query {
            sender: Some("holder042@pec.bench.test".into()),
            since: Some(since),
            until: Some(until),
            ..Query::default()
        })
        .expect("search");
    println!(
        "search by sender in {month}: {} record(s) in {:.3} s",
        found.len(),
        t.elapsed().as_secs_f64()
    );
    drop(registro);
    drop(store);
    let config = dir.path().join("pecbox.toml");
    std::fs::write(
        &config,
        format!(
            "[provider]\nname = \"Bench PEC\"\ndomains = [\"pec.bench.test\"]\nhostname = \"pec.bench.test\"\n[storage]\ndata_dir = \"{}\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let cold = std::process::Command::new("sh")
        .args(["-c", "sync && echo 3 > /proc/sys/vm/drop_caches"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // `pecbox --config … ARGS` as a user runs it: (standard output, seconds).
    let pecbox = |args: &[&str]| {
        let t = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pecbox"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("pecbox");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            t.elapsed().as_secs_f64(),
        )
    };
    let cli = |args: &[&str]| {
        let (out, secs) = pecbox(&[&["log", "search", "--json"], args].concat());
        // One JSON record per line.
        let found = out
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            .count();
        (found, secs)
    };
    let cache = if cold {
        "cold page cache"
    } else {
        "warm page cache"
    };
    let id = format!("m{:010}@pec.bench.test", probe + 7);
    let (n, secs) = cli(&["--message-id", &id]);
    println!("pecbox log search --message-id ({cache}): {n} record(s) in {secs:.3} s");
    let (since, until) = (since.to_rfc3339(), until.to_rfc3339());
    let (n, secs) = cli(&[
        "--sender",
        "holder043@pec.bench.test",
        "--since",
        &since,
        "--until",
        &until,
    ]);
    println!("pecbox log search --sender --since --until ({cache}): {n} record(s) in {secs:.3} s");

    // A whole month out of the box: written as it is read, so memory stays flat.
    pecbox(&["init"]);
    let file = dir.path().join("export.json");
    let (_, secs) = pecbox(&[
        "log",
        "export",
        "--month",
        &month,
        "-o",
        file.to_str().unwrap(),
    ]);
    // The largest resident size of the pecbox processes waited for so far.
    let peak_mb = || {
        // SAFETY: getrusage only fills the struct we own.
        let kb = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
            usage.ru_maxrss
        };
        kb as f64 / 1024.0
    };
    let export_peak = peak_mb();
    let size = std::fs::metadata(&file).map_or(0, |m| m.len());
    let (_, secs_verify) = pecbox(&["log", "verify", file.to_str().unwrap()]);
    println!(
        "pecbox log export --month {month}: {:.1} MB in {secs:.1} s (largest pecbox process so far {export_peak:.0} MB); log verify of the file {secs_verify:.1} s ({:.0} MB)",
        size as f64 / 1e6,
        peak_mb()
    );

    let store = Store::open(&dir.path().join("store")).expect("store");
    let registro = Registro::open(&store).expect("registro");
    let t = Instant::now();
    let report = registro.verify(&[], &|_| {}).expect("verify");
    println!(
        "verify: {} records, ok={} in {:.1} s",
        report.records,
        report.ok(),
        t.elapsed().as_secs_f64()
    );
}
