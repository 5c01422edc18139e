//! The configuration in two layers (interface.md §1), with the real binary and a real
//! daemon whose panel is driven over HTTPS (tests/panel/config_test.py): the factory
//! file in a folder of its own, the override `<data_dir>/pecbox.toml` on top of it, and
//! the panel writing only the override, also when the factory folder is read-only.

#[path = "panel/harness.rs"]
mod harness;
mod support;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::*;

fn override_path(b: &PecBox) -> PathBuf {
    harness::data_dir(b).join("pecbox.toml")
}

/// `pecbox config show`'s line for `key`, which must say where its value comes from.
fn shown(b: &PecBox, starts: &str, from: &str) {
    let text = b.run_ok(&["config", "show"], None);
    let line = text
        .lines()
        .find(|l| l.starts_with(starts))
        .unwrap_or_else(|| panic!("no `{starts}` in pecbox config show:\n{text}"));
    assert!(
        line.ends_with(from),
        "`{line}` should end with `{from}`:\n{text}"
    );
}

fn from(path: &Path) -> String {
    format!("# from {}", path.display())
}

fn script(mode: &str, b: &PecBox, url: &str, expect_name: &str, extra: &[String]) {
    let mut args = vec![
        mode.to_string(),
        "--url".into(),
        url.to_string(),
        "--ca".into(),
        b.ca_path().display().to_string(),
        "--data-dir".into(),
        harness::data_dir(b).display().to_string(),
        "--override".into(),
        override_path(b).display().to_string(),
        "--expect-name".into(),
        expect_name.to_string(),
    ];
    args.extend_from_slice(extra);
    harness::run_script("config_test.py", &args, &[b]);
}

#[test]
fn the_override_wins_and_the_panel_writes_only_it() {
    let mut alfa = PecBox::new("Alfa PEC", "pec.alfa.test", "");
    alfa.relocate_config("etc");
    let url = harness::enable_panel(&alfa);
    alfa.init();
    alfa.add_mailbox("alice");
    let factory = alfa.config_path();
    let over = override_path(&alfa);
    assert_ne!(factory.parent(), over.parent());
    std::fs::write(
        &over,
        "# written by hand before the panel\n[provider]\nname = \"Alfa PEC (override)\"\n",
    )
    .unwrap();
    let factory_bytes = std::fs::read(&factory).unwrap();

    let ldif = alfa.index_self();
    assert!(
        ldif.contains("providerName: Alfa PEC (override)"),
        "index self uses the override's name:\n{ldif}"
    );
    shown(&alfa, "name = \"Alfa PEC (override)\"", &from(&over));
    shown(&alfa, "hostname = \"localhost\"", &from(&factory));
    shown(&alfa, "cache_mb = 32", "# built-in default");

    alfa.start();
    script("settings", &alfa, &url, "Alfa PEC (override)", &[]);
    assert_eq!(
        std::fs::read(&factory).unwrap(),
        factory_bytes,
        "the factory file is byte for byte the same"
    );
    shown(
        &alfa,
        "smarthost = \"relay.example.org:2525\"",
        &from(&over),
    );
    shown(&alfa, "submission = \"\"", &from(&over));
    shown(&alfa, "months = 36", &from(&over));
    shown(&alfa, "name = \"Alfa PEC (override)\"", &from(&over));
    assert_eq!(alfa.stop(), Some(0));

    // A broken override stops every command with one line naming it.
    let saved = std::fs::read_to_string(&over).unwrap();
    for (text, says) in [
        (format!("{saved}\n[listen\n"), "line "),
        ("[storage]\ndata_dir = \"/tmp\"\n".to_string(), "data_dir"),
    ] {
        std::fs::write(&over, text).unwrap();
        for args in [&["index", "self"][..], &["config", "show"], &["run"]] {
            let out = alfa.cmd().args(args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} with a broken override");
            assert!(
                err.starts_with(&format!("pecbox: {}: ", over.display())) && err.contains(says),
                "{args:?}: {err}"
            );
        }
    }
}

/// Runs the box's commands in a mount namespace where the factory folder is a
/// read-only bind mount, as `ProtectSystem=strict` leaves /etc on the appliance. Root
/// ignores permission bits (the tests run as root here), a read-only mount it does not;
/// the wrapper refuses to go on if it could still write there.
const READ_ONLY_FACTORY: &str = r#"mount --bind -o ro "$0" "$0" || exit 96
if touch "$0/.probe" 2>/dev/null; then echo "$0 is writable" >&2; exit 97; fi
exec "$@""#;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn the_wizard_works_with_a_read_only_factory_folder() {
    let mut beta = PecBox::new("Beta PEC", "pec.beta.test", "");
    beta.relocate_config("etc");
    let url = harness::enable_panel(&beta);
    beta.init();
    let factory = beta.config_path();
    let etc = factory.parent().unwrap().to_path_buf();
    std::fs::set_permissions(&factory, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o555)).unwrap();
    if is_root() {
        let probe = std::process::Command::new("unshare")
            .args(["-m", "true"])
            .status();
        assert!(
            probe.is_ok_and(|s| s.success()),
            "running as root, this test needs `unshare -m` (util-linux, CAP_SYS_ADMIN) to \
             make the factory folder a read-only bind mount: root ignores 0444/0555"
        );
        beta.wrap(&[
            OsStr::new("unshare"),
            OsStr::new("-m"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(READ_ONLY_FACTORY),
            etc.as_os_str(),
        ]);
    }
    let factory_bytes = std::fs::read(&factory).unwrap();
    let over = override_path(&beta);

    beta.start();
    let name = "Beta PEC rinominato";
    let hostname = "mx.beta.test";
    script(
        "wizard",
        &beta,
        &url,
        "Beta PEC",
        &[
            "--name".into(),
            name.into(),
            "--hostname".into(),
            hostname.into(),
        ],
    );
    assert_eq!(std::fs::read(&factory).unwrap(), factory_bytes);
    assert_eq!(beta.stop(), Some(0));

    beta.start();
    script(
        "restarted",
        &beta,
        &url,
        name,
        &[
            "--hostname".into(),
            hostname.into(),
            "--smtp-port".into(),
            beta.ports.smtp.to_string(),
        ],
    );
    let ldif = beta.index_self();
    assert!(ldif.contains(&format!("providerName: {name}")), "{ldif}");
    shown(&beta, &format!("name = \"{name}\""), &from(&over));
    shown(&beta, &format!("hostname = \"{hostname}\""), &from(&over));
    shown(&beta, "domains = [\"pec.beta.test\"]", &from(&factory));
    let listed = beta.run_ok(&["mailbox", "list"], None);
    assert!(listed.contains("carla@pec.beta.test"), "{listed}");
    assert_eq!(std::fs::read(&factory).unwrap(), factory_bytes);
    assert_eq!(beta.stop(), Some(0));
    // The temporary folder must stay removable.
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
}
