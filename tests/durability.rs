//! kill -9 of either daemon at points during a run of 200 messages (one in ten large
//! enough to be kept as a file beside the database), then restart: every
//! accepted message reaches its recipient, every receipt is issued exactly once and the
//! registro dei log records each step once, its chain whole.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pecbox::pec::classify::classify;
use support::*;

#[test]
fn kill_9_during_200_messages_loses_nothing_and_duplicates_nothing() {
    let (mut alfa, mut beta) = two_providers("retry_secs = 1\nretry_max_secs = 2");
    let alice = alfa.add_mailbox("alice");
    let bob = beta.add_mailbox("bob");
    alfa.start();
    beta.start();

    let mut accepted = Vec::new();
    for i in 0..200 {
        let subject = format!("messaggio {i:03}");
        // every tenth is large enough for its busta and receipts to be files (blobs)
        let args = [
            "--to",
            &bob,
            "--subject",
            &subject,
            "--attach-bytes",
            "200000",
        ];
        let (ok, _) = alfa.send(&alice, &args[..if i % 10 == 0 { 6 } else { 4 }]);
        if ok {
            accepted.push(subject);
        }
        match i {
            40 => {
                alfa.kill9();
                alfa.start();
            }
            80 => {
                beta.kill9();
                beta.start();
            }
            120 => {
                beta.kill9();
                alfa.kill9();
                alfa.start();
                beta.start();
            }
            160 => {
                alfa.kill9();
                beta.kill9();
                beta.start();
                alfa.start();
            }
            _ => {}
        }
    }
    assert!(accepted.len() >= 190, "only {} accepted", accepted.len());
    let n = accepted.len();

    let deadline = Instant::now() + Duration::from_secs(240);
    let (bob_box, alice_box) = loop {
        let bob_box = beta.fetch(&bob);
        let alice_box = alfa.fetch(&alice);
        let done = bob_box.len() >= n && alice_box.len() >= 2 * n;
        if done || Instant::now() > deadline {
            break (bob_box, alice_box);
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    // Give duplicates, if any, the chance to show up.
    std::thread::sleep(Duration::from_secs(3));
    let bob_box = if bob_box.len() >= n {
        beta.fetch(&bob)
    } else {
        bob_box
    };
    let alice_box = if alice_box.len() >= 2 * n {
        alfa.fetch(&alice)
    } else {
        alice_box
    };

    let mut buste: HashMap<String, usize> = HashMap::new();
    for m in &bob_box {
        *buste.entry(subject(m)).or_default() += 1;
    }
    let mut receipts: HashMap<(String, String), usize> = HashMap::new();
    for m in &alice_box {
        let kind = classify(m)
            .kind()
            .map_or("other".into(), |k| k.code().to_string());
        let subject = subject(m);
        let original = subject
            .split_once(": ")
            .map_or(subject.clone(), |(_, s)| s.to_string());
        *receipts.entry((kind, original)).or_default() += 1;
    }
    for s in &accepted {
        assert_eq!(
            buste.get(&format!("POSTA CERTIFICATA: {s}")),
            Some(&1),
            "busta of {s}"
        );
        assert_eq!(
            receipts.get(&("accettazione".into(), s.clone())),
            Some(&1),
            "accettazione of {s}"
        );
        assert_eq!(
            receipts.get(&("avvenuta-consegna-completa".into(), s.clone())),
            Some(&1),
            "consegna of {s}"
        );
    }
    assert_eq!(bob_box.len(), n, "no busta beyond the accepted ones");
    assert_eq!(
        alice_box.len(),
        2 * n,
        "no receipt beyond one accettazione and one consegna each"
    );

    // The registro dei log agrees, kills and all: the chain is whole and each step is
    // recorded exactly once (records commit with the step they describe).
    for (p, kind) in [(&alfa, "accettazione"), (&beta, "consegna-emessa")] {
        let verify = p.run_ok(&["log", "verify"], None);
        assert!(verify.starts_with("registro intact"), "{verify}");
        let search = p.run_ok(&["log", "search", "--kind", kind, "--json"], None);
        assert_eq!(search.lines().count(), n, "{kind} records");
    }
}
