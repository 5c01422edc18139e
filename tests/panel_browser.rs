//! The web panel in a real headless Chromium against two running providers: wizard,
//! administration, a PEC with ricevuta breve delivered to the other box, receipts,
//! exports, password change and the notice of new PEC (tests/panel/browser_test.py).
//! Screenshots land in target/panel-screenshots/.

#[path = "panel/harness.rs"]
mod harness;
mod support;

use std::path::Path;

use support::*;

#[test]
fn browser_scenario_across_two_providers() {
    let sink_port = harness::free_port();
    let (mut alfa, mut beta) = two_providers(&format!("smarthost = \"127.0.0.1:{sink_port}\""));
    let url = harness::enable_panel(&alfa);
    let to = beta.add_mailbox("bob");
    let cc = beta.add_mailbox("carol");
    alfa.start();
    beta.start();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/panel-screenshots");
    let arg = |s: &str| s.to_string();
    let path = |p: &Path| p.display().to_string();
    harness::run_script(
        "browser_test.py",
        &[
            arg("--url"),
            url,
            arg("--data-dir"),
            path(&harness::data_dir(&alfa)),
            arg("--ca"),
            path(&alfa.ca_path()),
            arg("--peer-ca"),
            path(&beta.ca_path()),
            arg("--peer-config"),
            path(&beta.config_path()),
            arg("--domain"),
            alfa.domain.clone(),
            arg("--to"),
            to,
            arg("--cc"),
            cc,
            arg("--peer-submissions"),
            beta.ports.submissions.to_string(),
            arg("--peer-password"),
            arg(PASSWORD),
            arg("--sink-port"),
            sink_port.to_string(),
            arg("--pecbox"),
            arg(env!("CARGO_BIN_EXE_pecbox")),
            arg("--shots"),
            path(&shots),
        ],
        &[&alfa, &beta],
    );
    assert_eq!(
        alfa.stop(),
        Some(0),
        "alfa stops cleanly with the panel open"
    );
    assert_eq!(beta.stop(), Some(0));
}
