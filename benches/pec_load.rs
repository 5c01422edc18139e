//! End-to-end PEC throughput between two providers on this machine: N messages from
//! alice@alfa to bob@beta over one SMTPS session, timed until alice holds every
//! accettazione and every ricevuta di consegna. Printed beside the RSA-2048 bound of
//! the same machine: each message costs four signatures (accettazione, busta, presa in
//! carico, consegna), so `openssl speed rsa2048` sign/s ÷ 4 is the ceiling.
//! Run: `cargo bench --bench pec_load` (`PEC_LOAD_MESSAGES=N`, default 300).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

fn openssl_rsa2048_signs_per_second() -> Option<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "3", "rsa2048"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("rsa 2048 bits"))?;
    line.split_whitespace().nth(5)?.parse().ok()
}

fn main() {
    let n = env_count("PEC_LOAD_MESSAGES", 300);
    let (mut alfa, mut beta) = two_providers("");
    let alice = alfa.add_mailbox("alice");
    let bob = beta.add_mailbox("bob");
    alfa.start();
    beta.start();

    let start = Instant::now();
    alfa.submit_load(&alice, &bob, n);
    let submitted = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while alfa.count(&alice) < 2 * n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let done = start.elapsed();
    assert_eq!(alfa.count(&alice), 2 * n, "not every receipt arrived");
    let rate = n as f64 / done.as_secs_f64();
    println!(
        "{n} certified messages alfa → beta: submitted in {:.1} s, all receipts back in {:.1} s: {rate:.1} messages/s",
        submitted.as_secs_f64(),
        done.as_secs_f64()
    );
    if let Some(signs) = openssl_rsa2048_signs_per_second() {
        println!(
            "openssl speed rsa2048: {signs:.0} sign/s → bound {:.0} messages/s (4 signatures each); pecbox reaches {:.0} % of it",
            signs / 4.0,
            100.0 * rate / (signs / 4.0)
        );
    }
    alfa.stop();
    beta.stop();
}
