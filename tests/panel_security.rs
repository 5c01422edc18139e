//! Bad input against the web panel of a running provider: CSRF-less forms, another
//! holder's messages, roles mixed up, path traversal in export names, oversized
//! uploads, wrong passwords in a loop (tests/panel/security_test.py, standard Python).
//! Also the Thunderbird autoconfig document.

#[path = "panel/harness.rs"]
mod harness;
mod support;

use support::*;

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut alfa = PecBox::new(
        "Alfa PEC",
        "pec.alfa.test",
        "max_message_bytes = 1048576\n\n[limits]\naddress_failures = 6",
    );
    alfa.init();
    let url = harness::enable_panel(&alfa);
    for name in ["alice", "bob", "carol"] {
        alfa.add_mailbox(name);
    }
    alfa.start();
    harness::run_script(
        "security_test.py",
        &[
            "--url".into(),
            url,
            "--ca".into(),
            alfa.ca_path().display().to_string(),
            "--data-dir".into(),
            harness::data_dir(&alfa).display().to_string(),
            "--domain".into(),
            alfa.domain.clone(),
            "--password".into(),
            PASSWORD.into(),
        ],
        &[&alfa],
    );
    // The settings the script saved are the override's, for every command.
    let shown = alfa.run_ok(&["config", "show"], None);
    let over = harness::data_dir(&alfa).join("pecbox.toml");
    let line = shown
        .lines()
        .find(|l| l.starts_with("smarthost = \"relay.example.org:2525\""))
        .unwrap_or_else(|| panic!("the saved smarthost in:\n{shown}"));
    assert!(
        line.ends_with(&format!("# from {}", over.display())),
        "{line}"
    );
    let listed = alfa.run_ok(&["mailbox", "list"], None);
    assert!(!listed.contains("intruso"), "{listed}");
    assert!(listed.contains("alice@pec.alfa.test\tactive"), "{listed}");
    assert_eq!(alfa.stop(), Some(0));
}
