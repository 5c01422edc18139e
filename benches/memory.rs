//! What a small box must hold, measured on real daemons (RSS from /proc), printed
//! beside the figures measured before the appliance work (issue 14, same machine
//! class, release build):
//! 1. one ~29 MB message through two providers: each daemon's RSS idle, peak, 15 s after;
//! 2. 150 parallel wrong SMTP logins from 150 addresses: peak RSS, and how long the
//!    owner's right password from another address waits;
//! 3. RSS of both daemons after 1 000 certified messages.
//!
//! Run: `cargo bench --bench memory` (`MEMORY_MESSAGES=N` for part 3, default 1000).

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

const MB: u64 = 1 << 20;

fn big_message() {
    let (mut alfa, mut beta) = two_providers("");
    let alice = alfa.add_mailbox("alice");
    let bob = beta.add_mailbox("bob");
    alfa.start();
    beta.start();
    std::thread::sleep(Duration::from_secs(2));
    let (pa, pb) = (alfa.pid().unwrap(), beta.pid().unwrap());
    let (idle_a, idle_b) = (rss(pa), rss(pb));
    let (wa, wb) = (PeakRss::watch(pa), PeakRss::watch(pb));
    let start = Instant::now();
    let (ok, out) = alfa.send(&alice, &["--to", &bob, "--attach-bytes", "21500000"]);
    assert!(ok, "{out}");
    let inbox = beta.wait_for(&bob, 1, Duration::from_secs(300));
    let size = inbox.first().map_or(0, |m| m.len() as u64);
    let receipts = alfa.wait_for(&alice, 2, Duration::from_secs(300));
    assert_eq!(receipts.len(), 2, "accettazione and consegna");
    let took = start.elapsed();
    let (peak_a, peak_b) = (wa.peak(), wb.peak());
    std::thread::sleep(Duration::from_secs(15));
    let (after_a, after_b) = (rss(pa), rss(pb));
    println!(
        "30 MB flow ({:.1} MB busta, {:.1} s end to end, read back over POP3 by both holders)",
        size as f64 / 1e6,
        took.as_secs_f64()
    );
    println!(
        "  sender:   idle {} MB, peak {} MB ({:.1}× the message above idle), 15 s after {} MB   [before: peak 376 MB, after 370 MB]",
        idle_a / MB,
        peak_a / MB,
        (peak_a - idle_a) as f64 / size.max(1) as f64,
        after_a / MB
    );
    println!(
        "  receiver: idle {} MB, peak {} MB ({:.1}× the message above idle), 15 s after {} MB   [before: peak 577 MB, after 547 MB]",
        idle_b / MB,
        peak_b / MB,
        (peak_b - idle_b) as f64 / size.max(1) as f64,
        after_b / MB
    );
    alfa.stop();
    beta.stop();
}

fn login_flood() {
    let mut b = PecBox::new(
        "Flood PEC",
        "pec.flood.test",
        "\n[limits]\naddress_failures = 1000",
    );
    b.init();
    let alice = b.add_mailbox("alice");
    b.start();
    let pid = b.pid().unwrap();
    let idle = rss(pid);
    let tls = Arc::new(tls_connector(&b.ca_path()));
    let port = b.ports.submissions;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (owner_wait, all) = runtime.block_on(async {
        let started = Instant::now();
        let flood: Vec<_> = (0..150u32)
            .map(|i| {
                let tls = tls.clone();
                let from: IpAddr = format!("127.0.{}.{}", 20 + i / 200, 1 + i % 200)
                    .parse()
                    .unwrap();
                tokio::spawn(async move {
                    smtp_auth(port, &tls, from, &format!("u{i}@pec.flood.test"), "no").await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let owner = smtp_auth(port, &tls, "127.0.9.9".parse().unwrap(), &alice, PASSWORD).await;
        assert!(owner.0.starts_with("235"), "{}", owner.0);
        for f in flood {
            f.await.unwrap();
        }
        (owner.1, started.elapsed())
    });
    let peak = proc_status_bytes(pid, "VmHWM:");
    println!(
        "150 parallel wrong logins: idle {} MB, peak {} MB; all answered in {:.1} s; the owner's login waited {:.1} s   [before: 2.0 GB, kept]",
        idle / MB,
        peak / MB,
        all.as_secs_f64(),
        owner_wait.as_secs_f64()
    );
    b.stop();
}

fn many_messages() {
    let n = env_count("MEMORY_MESSAGES", 1000);
    let (mut alfa, mut beta) = two_providers("");
    let alice = alfa.add_mailbox("alice");
    let bob = beta.add_mailbox("bob");
    alfa.start();
    beta.start();
    alfa.submit_load(&alice, &bob, n);
    let deadline = Instant::now() + Duration::from_secs(1800);
    while alfa.count(&alice) < 2 * n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let (pa, pb) = (alfa.pid().unwrap(), beta.pid().unwrap());
    println!(
        "after {n} certified messages: sender {} MB, receiver {} MB   [before: sender 126 MB]",
        rss(pa) / MB,
        rss(pb) / MB
    );
    alfa.stop();
    beta.stop();
}

fn main() {
    big_message();
    login_flood();
    many_messages();
}
