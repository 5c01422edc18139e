//! `pecbox update` against Debian's real `rauc` (installed with apt-get when missing):
//! bundles made by `rauc bundle` here, signatures checked by the real `rauc info`.
//! `rauc install` and `rauc status` need the RAUC service on a RAUC system, so
//! `PECBOX_RAUC` points at a wrapper script that passes `info` to the real rauc and
//! emulates `install` / `status` / `mark-good`, logging every call.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use pecbox::update::health::{confirm_with, Health};
use pecbox::update::{Rauc, SystemStatus};

const COMPATIBLE: &str = "pecbox-test";
const RUNNING: &str = "0.5.0";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// rauc + mksquashfs, installed once (apt-get) when missing.
fn ensure_rauc() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let have = |bin: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {bin}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if !(have("rauc") && have("mksquashfs")) {
            eprintln!("tests/update.rs: installing rauc and squashfs-tools with apt-get");
            let out = Command::new("apt-get")
                .args(["install", "-y", "rauc", "squashfs-tools"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output()
                .expect("apt-get");
            assert!(
                out.status.success() && have("rauc") && have("mksquashfs"),
                "these tests need Debian's rauc and squashfs-tools; apt-get failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        ensure_rauc();
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture { dir };
        let d = f.path();
        // Development CA (the box's keyring) + a signing certificate it issued;
        // a second, unrelated self-signed key for the "other key" bundle.
        let ossl = |args: &[&str]| {
            run(Command::new("openssl").args(args).current_dir(d));
        };
        ossl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=pecbox test update CA",
        ]);
        ossl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "dev.key",
            "-out",
            "dev.csr",
            "-subj",
            "/CN=pecbox test signing",
        ]);
        ossl(&[
            "x509",
            "-req",
            "-in",
            "dev.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "dev.pem",
            "-days",
            "30",
        ]);
        ossl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-days",
            "30",
            "-subj",
            "/CN=somebody else",
        ]);
        std::fs::write(
            d.join("system.conf"),
            format!(
                "[system]\ncompatible={COMPATIBLE}\nbootloader=noop\n\n[keyring]\npath={}\n\n\
                 [slot.rootfs.0]\ndevice={}/a.img\ntype=ext4\nbootname=A\n\n\
                 [slot.rootfs.1]\ndevice={}/b.img\ntype=ext4\nbootname=B\n",
                d.join("ca.pem").display(),
                d.display(),
                d.display()
            ),
        )
        .unwrap();
        std::fs::write(d.join("version"), format!("{RUNNING}\n")).unwrap();
        std::fs::write(d.join("status.json"), STATUS_JSON).unwrap();
        let fake = d.join("fake-rauc");
        std::fs::write(&fake, FAKE_RAUC).unwrap();
        run(Command::new("chmod").arg("+x").arg(&fake));
        f
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rauc bundle` of a small random "rootfs" image, verity format.
    fn bundle(&self, name: &str, version: &str, compatible: &str, key: &str) -> PathBuf {
        let d = self.path();
        let input = d.join(format!("in-{name}"));
        std::fs::create_dir_all(&input).unwrap();
        // Incompressible (xorshift), so the squashfs is larger than one block.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let image: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(input.join("rootfs.ext4"), image).unwrap();
        std::fs::write(
            input.join("manifest.raucm"),
            format!(
                "[update]\ncompatible={compatible}\nversion={version}\n\n[bundle]\nformat=verity\n\n\
                 [image.rootfs]\nfilename=rootfs.ext4\n"
            ),
        )
        .unwrap();
        let out = d.join(format!("{name}.raucb"));
        run(Command::new("rauc")
            .arg(format!("--cert={}", d.join(format!("{key}.pem")).display()))
            .arg(format!("--key={}", d.join(format!("{key}.key")).display()))
            .arg("bundle")
            .arg(&input)
            .arg(&out));
        out
    }

    fn pecbox(&self, args: &[&str]) -> (i32, String, String) {
        let d = self.path();
        let out = Command::new(env!("CARGO_BIN_EXE_pecbox"))
            .args(args)
            .env("PECBOX_RAUC", d.join("fake-rauc"))
            .env("PECBOX_RAUC_CONF", d.join("system.conf"))
            .env("PECBOX_VERSION_FILE", d.join("version"))
            .env("FAKE_RAUC_DIR", d)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.path().join("calls.log")).unwrap_or_default()
    }

    fn install(&self, bundle: &Path) -> (i32, String, String) {
        self.pecbox(&["update", "install", bundle.to_str().unwrap()])
    }
}

/// Passes `info` to the real rauc, emulates the rest; every call goes to calls.log.
const FAKE_RAUC: &str = r#"#!/bin/sh
FAKE_RAUC_DIR=${FAKE_RAUC_DIR:-$(dirname "$0")}
for bundle in "$@"; do :; done
echo "$*" >> "$FAKE_RAUC_DIR/calls.log"
for a in "$@"; do
  case "$a" in
    --conf=*|-*) ;;
    *) cmd="$a"; break ;;
  esac
done
case "$cmd" in
  info) exec rauc "$@" ;;
  install)
    if [ -e "$FAKE_RAUC_DIR/install-fails" ]; then
      echo "  0% Installing"
      echo " 20% Checking bundle"
      echo "LastError: Failed to check bundle: bundle payload is corrupted"
      echo "Installing \`$bundle' failed" >&2
      exit 1
    fi
    for p in "  0% Installing" " 20% Checking bundle" " 40% Checking bundle done." \
             " 60% Copying image to rootfs.1" " 99% Copying image to rootfs.1 done." "100% Installing done."; do
      echo "$p"
    done
    echo "Installing \`$bundle' succeeded"
    ;;
  status)
    case "$*" in
      *mark-good*) echo "rauc-Message: 10:00:00.000: rauc status: marked slot rootfs.1 as good" >&2 ;;
      *) cat "$FAKE_RAUC_DIR/status.json" ;;
    esac
    ;;
  *) echo "fake rauc: unexpected $*" >&2; exit 9 ;;
esac
"#;

/// The shape `rauc status --detailed --output-format=json` prints (RAUC 1.8).
const STATUS_JSON: &str = r#"{"compatible":"pecbox-test","variant":"","booted":"B","boot_primary":"rootfs.1","slots":[{"rootfs.0":{"class":"rootfs","device":"/dev/vda2","type":"ext4","bootname":"A","state":"inactive","parent":null,"mountpoint":null,"boot_status":"bad","slot_status":{"bundle":{"compatible":"pecbox-test","version":"0.4.0","description":null,"build":null,"hash":null},"installed":{"timestamp":"2026-11-20T10:00:00Z","count":1},"activated":{"timestamp":"2026-11-20T10:00:01Z","count":1},"status":"ok"}}},{"rootfs.1":{"class":"rootfs","device":"/dev/vda3","type":"ext4","bootname":"B","state":"booted","parent":null,"mountpoint":"/","boot_status":"good","slot_status":{"bundle":{"compatible":"pecbox-test","version":"0.5.0","description":null,"build":null,"hash":null},"installed":{"timestamp":"2026-11-25T09:00:00Z","count":2},"activated":{"timestamp":"2026-11-25T09:00:01Z","count":2},"status":"ok"}}}]}"#;

#[test]
fn good_bundle_is_installed_with_progress() {
    let f = Fixture::new();
    let b = f.bundle("good", "0.6.0", COMPATIBLE, "dev");
    let (code, stdout, stderr) = f.install(&b);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("signature trusted"), "{stderr}");
    assert!(
        stderr.contains(" 60% Copying image to rootfs.1"),
        "{stderr}"
    );
    assert!(stderr.contains("100% Installing done."), "{stderr}");
    assert!(stdout.contains("installed 0.6.0"), "{stdout}");
    let calls = f.calls();
    assert!(calls.contains("info --output-format=json"), "{calls}");
    assert!(
        calls.contains(&format!("install {}", b.display())),
        "{calls}"
    );
}

#[test]
fn older_or_same_version_refused_before_install() {
    let f = Fixture::new();
    for (name, version) in [("older", "0.4.9"), ("same", RUNNING), ("rc", "0.5.0-rc.1")] {
        let b = f.bundle(name, version, COMPATIBLE, "dev");
        let (code, _, stderr) = f.install(&b);
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "version {version} is not newer than the running version {RUNNING}"
            )),
            "{name}: {stderr}"
        );
        assert!(stderr.contains("anti-rollback"), "{stderr}");
    }
    let calls = f.calls();
    assert!(
        !calls.contains("install"),
        "RAUC install was called: {calls}"
    );
}

#[test]
fn bundle_signed_by_another_key_refused() {
    let f = Fixture::new();
    let b = f.bundle("other", "0.6.0", COMPATIBLE, "other");
    let (code, _, stderr) = f.install(&b);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("bundle refused: the signature is not trusted by this box's keyring"),
        "{stderr}"
    );
    assert!(!f.calls().contains("install"), "{}", f.calls());
}

#[test]
fn corrupted_bundles_refused() {
    let f = Fixture::new();
    let b = f.bundle("good", "0.6.0", COMPATIBLE, "dev");
    let bytes = std::fs::read(&b).unwrap();
    // A flipped byte inside the signed manifest / signature.
    let mut flipped = bytes.clone();
    let at = bytes.len() - 300;
    for x in &mut flipped[at..at + 8] {
        *x ^= 0x5a;
    }
    let p1 = f.path().join("flipped.raucb");
    std::fs::write(&p1, flipped).unwrap();
    // An interrupted download.
    let p2 = f.path().join("truncated.raucb");
    std::fs::write(&p2, &bytes[..bytes.len() - 5000]).unwrap();
    // Not a bundle at all.
    let p3 = f.path().join("garbage.raucb");
    std::fs::write(
        &p3,
        b"this is not a bundle, just some text of a decent size....",
    )
    .unwrap();
    // A flipped byte in the payload (the squashfs): `rauc info` accepts the signature;
    // pecbox's dm-verity root hash check refuses it.
    let mut payload = bytes.clone();
    payload[1000] ^= 0xff;
    let p4 = f.path().join("payload.raucb");
    std::fs::write(&p4, payload).unwrap();
    let (code, _, stderr) = f.install(&p4);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "bundle refused: it is damaged or not a RAUC bundle (the payload does not match the signed dm-verity root hash)"
        ),
        "{stderr}"
    );
    for p in [&p1, &p2, &p3] {
        let (code, _, stderr) = f.install(p);
        assert_eq!(code, 1, "{}: {stderr}", p.display());
        assert!(
            stderr.contains("bundle refused: it is damaged or not a RAUC bundle"),
            "{}: {stderr}",
            p.display()
        );
    }
    assert!(!f.calls().contains("install"), "{}", f.calls());
}

#[test]
fn payload_corruption_found_by_rauc_install_is_reported() {
    let f = Fixture::new();
    let b = f.bundle("good", "0.6.0", COMPATIBLE, "dev");
    std::fs::write(f.path().join("install-fails"), "").unwrap();
    let (code, _, stderr) = f.install(&b);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("bundle refused: it is damaged or not a RAUC bundle (Failed to check bundle: bundle payload is corrupted)"),
        "{stderr}"
    );
    assert!(stderr.contains("the running slot is unchanged"), "{stderr}");
}

#[test]
fn wrong_compatible_refused() {
    let f = Fixture::new();
    let b = f.bundle("rpi", "0.6.0", "pecbox-rpi4", "dev");
    let (code, _, stderr) = f.install(&b);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "bundle refused: it is for \"pecbox-rpi4\", this box is \"pecbox-test\" (wrong compatible)"
        ),
        "{stderr}"
    );
    assert!(!f.calls().contains("install"), "{}", f.calls());
}

#[test]
fn missing_rauc_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_pecbox"))
        .args(["update", "status"])
        .env("PECBOX_RAUC", "/nonexistent/rauc")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot run /nonexistent/rauc"), "{stderr}");
}

#[test]
fn status_shows_slots_versions_marks() {
    let s = SystemStatus::parse(STATUS_JSON).unwrap();
    assert_eq!(s.booted, "B");
    assert_eq!(s.boot_primary, "rootfs.1");
    assert_eq!(s.slots.len(), 2);
    assert_eq!(s.slots[0].name, "rootfs.0");
    assert_eq!(s.slots[0].boot_status, "bad");
    assert_eq!(s.slots[0].bundle_version.as_deref(), Some("0.4.0"));
    assert_eq!(s.slots[1].state, "booted");
    assert_eq!(s.slots[1].boot_status, "good");

    let f = Fixture::new();
    let (code, stdout, stderr) = f.pecbox(&["update", "status"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("booted slot:  B"), "{stdout}");
    assert!(stdout.contains("running:      0.5.0"), "{stdout}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("rootfs.0")[..6],
        ["rootfs.0", "A", "/dev/vda2", "inactive", "bad", "0.4.0"]
    );
    assert_eq!(
        row("rootfs.1")[..6],
        ["rootfs.1", "B", "/dev/vda3", "booted", "good", "0.5.0"]
    );
    let (code, stdout, _) = f.pecbox(&["update", "status", "--json"]);
    assert_eq!(code, 0);
    assert!(stdout.trim().starts_with('{') && stdout.contains("\"boot_status\":\"bad\""));
}

#[test]
fn health_marks_good_only_on_a_rauc_system() {
    let f = Fixture::new();
    let tp = common::TestProvider::new("Test Health", "health.test");
    let store = pecbox::store::Store::open(&f.path().join("store")).unwrap();
    let managed = Rauc {
        bin: f.path().join("fake-rauc"),
        conf: Some(f.path().join("system.conf")),
    };
    let got = confirm_with(&managed, &store, &tp.signer, &tp.ca.cert_pem).unwrap();
    assert_eq!(
        got,
        Health::MarkedGood("rauc status: marked slot rootfs.1 as good".into())
    );
    assert!(
        f.calls().contains("status mark-good booted"),
        "{}",
        f.calls()
    );

    // No system.conf: self-test only, RAUC never called.
    let unmanaged = Rauc {
        bin: PathBuf::from("/nonexistent/rauc"),
        conf: Some(f.path().join("no-such-system.conf")),
    };
    assert_eq!(
        confirm_with(&unmanaged, &store, &tp.signer, &tp.ca.cert_pem).unwrap(),
        Health::NotManaged
    );

    // A signing key that does not chain to the CA: self-test fails, nothing marked.
    let stranger = common::TestProvider::new("Stranger", "stranger.test");
    std::fs::remove_file(f.path().join("calls.log")).unwrap();
    let err = confirm_with(&managed, &store, &tp.signer, &stranger.ca.cert_pem).unwrap_err();
    assert!(err.starts_with("self-test failed: signing key"), "{err}");
    assert!(!f.calls().contains("mark-good"), "{}", f.calls());
}
