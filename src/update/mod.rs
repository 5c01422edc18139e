//! Signed A/B updates through RAUC (docs/updates.md).
//!
//! pecbox does not write slots itself: it asks the `rauc` command line tool about a
//! bundle (`rauc info`, which checks the signature against the system keyring), refuses
//! a bundle for another board or one that is not newer than the running system (before
//! RAUC writes anything), then hands it to `rauc install`. After a boot, the daemon
//! confirms its own health and marks the booted slot good ([`health`]).
//!
//! The `rauc` binary is `$PECBOX_RAUC` (default `rauc` on `$PATH`); its system
//! configuration is `$PECBOX_RAUC_CONF` (default `/etc/rauc/system.conf`), passed as
//! `rauc --conf` only when the variable is set.
pub mod health;
pub mod verity;
pub mod version;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub use version::Version;

/// Where RAUC's system configuration lives on a RAUC-managed box.
pub const SYSTEM_CONF: &str = "/etc/rauc/system.conf";
/// The image's version, written by image/build.sh (and buildroot's post-build step).
pub const VERSION_FILE: &str = "/etc/pecbox-version";

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("cannot run {0}: {1} (is RAUC installed? set PECBOX_RAUC to its path)")]
    Spawn(String, std::io::Error),
    #[error("bundle refused: the signature is not trusted by this box's keyring ({0})")]
    Signature(String),
    #[error("bundle refused: it is damaged or not a RAUC bundle ({0})")]
    Corrupted(String),
    #[error("bundle refused: {0}")]
    Refused(String),
    #[error("bundle refused: it is for \"{bundle}\", this box is \"{system}\" (wrong compatible)")]
    Compatible { bundle: String, system: String },
    #[error(
        "bundle refused: version {bundle} is not newer than the running version {running} \
         (anti-rollback; nothing was written)"
    )]
    NotNewer { bundle: String, running: String },
    #[error("installation failed: {0}")]
    Install(String),
    #[error("rauc: {0}")]
    Rauc(String),
    #[error("{0}")]
    Other(String),
}

/// How to run RAUC.
#[derive(Debug, Clone)]
pub struct Rauc {
    pub bin: PathBuf,
    /// `--conf` for every call; None: RAUC's own default.
    pub conf: Option<PathBuf>,
}

impl Rauc {
    /// `$PECBOX_RAUC` (default `rauc`) and `$PECBOX_RAUC_CONF`.
    pub fn from_env() -> Self {
        let bin = std::env::var_os("PECBOX_RAUC")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("rauc"));
        let conf = std::env::var_os("PECBOX_RAUC_CONF")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Rauc { bin, conf }
    }

    /// The system configuration file in use (for the compatible string).
    pub fn conf_path(&self) -> PathBuf {
        self.conf
            .clone()
            .unwrap_or_else(|| PathBuf::from(SYSTEM_CONF))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        if let Some(conf) = &self.conf {
            let mut arg = OsString::from("--conf=");
            arg.push(conf);
            cmd.arg(arg);
        }
        cmd.args(args);
        cmd
    }

    fn output(
        &self,
        args: &[&str],
        extra: &[&Path],
    ) -> Result<(bool, String, String), UpdateError> {
        let mut cmd = self.command(args);
        cmd.args(extra);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| UpdateError::Spawn(self.bin.display().to_string(), e))?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// `rauc info`: verifies the signature (system keyring) and reads the manifest.
    pub fn info(&self, bundle: &Path) -> Result<BundleInfo, UpdateError> {
        let (ok, stdout, stderr) = self.output(&["info", "--output-format=json"], &[bundle])?;
        if !ok {
            return Err(classify_failure(&stderr, &stdout));
        }
        BundleInfo::parse(&stdout)
    }

    /// `rauc status --detailed --output-format=json`.
    pub fn status(&self) -> Result<SystemStatus, UpdateError> {
        SystemStatus::parse(&self.status_json()?)
    }

    /// RAUC's raw JSON status.
    pub fn status_json(&self) -> Result<String, UpdateError> {
        let (ok, stdout, stderr) =
            self.output(&["status", "--detailed", "--output-format=json"], &[])?;
        if !ok {
            return Err(UpdateError::Rauc(last_error_line(&stderr, &stdout)));
        }
        Ok(stdout.trim().to_string())
    }

    /// `rauc status mark-good booted`.
    pub fn mark_good(&self) -> Result<String, UpdateError> {
        let (ok, stdout, stderr) = self.output(&["status", "mark-good", "booted"], &[])?;
        if !ok {
            return Err(UpdateError::Rauc(last_error_line(&stderr, &stdout)));
        }
        // RAUC says "marked slot … as good" through GLib's log: `rauc-Message: TIME: …`.
        let said = format!("{stdout}\n{stderr}");
        Ok(said
            .lines()
            .map(|l| strip_glib_prefix(l.trim()))
            .rfind(|l| !l.is_empty())
            .unwrap_or("marked good")
            .to_string())
    }

    /// `rauc install FILE`, calling `progress(percent, message)` for each progress line
    /// RAUC prints (`  20% Checking bundle`, stdout not being a terminal) and `line` for
    /// any other line (`LastError: …`, the final verdict).
    pub fn install(
        &self,
        bundle: &Path,
        mut progress: impl FnMut(u8, &str),
        mut line: impl FnMut(&str),
    ) -> Result<(), UpdateError> {
        let mut cmd = self.command(&["install"]);
        cmd.arg(bundle);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| UpdateError::Spawn(self.bin.display().to_string(), e))?;
        let mut stderr = child.stderr.take().expect("piped stderr");
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut seen = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                match parse_progress(&l) {
                    Some((pct, msg)) => progress(pct, msg),
                    None if !l.trim().is_empty() => line(l.trim()),
                    None => {}
                }
                seen.push(l);
            }
        }
        let status = child
            .wait()
            .map_err(|e| UpdateError::Spawn(self.bin.display().to_string(), e))?;
        let stderr = err_reader.join().unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            // The service's reason comes on stdout as `LastError: …`; stderr then only
            // says "Installing `…` failed".
            let last_error = seen
                .iter()
                .rev()
                .find_map(|l| l.trim().strip_prefix("LastError:"))
                .map(|m| m.trim().to_string());
            if let Some(reason) = last_error {
                return Err(match classify_failure(&reason, "") {
                    UpdateError::Rauc(m) => UpdateError::Install(m),
                    other => other,
                });
            }
            let stdout = seen.join("\n");
            Err(match classify_failure(&stderr, &stdout) {
                UpdateError::Rauc(m) => UpdateError::Install(m),
                other => other,
            })
        }
    }
}

/// A RAUC progress line: `  20% Checking bundle` (also `20% Checking bundle done.`).
pub fn parse_progress(line: &str) -> Option<(u8, &str)> {
    let t = line.trim_start();
    let (num, rest) = t.split_once('%')?;
    let pct: u8 = num.trim().parse().ok()?;
    Some((pct.min(100), rest.trim()))
}

/// `rauc-Message: 09:28:17.239: text` → `text`.
fn strip_glib_prefix(line: &str) -> &str {
    match line.strip_prefix("rauc-Message:") {
        Some(rest) => rest
            .trim_start()
            .split_once(": ")
            .map_or(rest.trim(), |(_, text)| text.trim()),
        None => line,
    }
}

/// OpenSSL's error queue lines: `800F08BDC37F0000:error:1C880004:Provider routines:…`.
fn is_openssl_dump(line: &str) -> bool {
    line.split_once(":error:")
        .is_some_and(|(head, _)| head.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The most telling line of RAUC's output, without GLib's `rauc-Message: time:` noise.
fn last_error_line(stderr: &str, stdout: &str) -> String {
    let pick = |text: &str| {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("rauc-Message:"))
            .find(|l| !is_openssl_dump(l))
            .map(str::to_string)
    };
    pick(stderr)
        .or_else(|| pick(stdout))
        .unwrap_or_else(|| "failed without a message".to_string())
}

/// Sorts RAUC's refusal into signature / damage / other.
fn classify_failure(stderr: &str, stdout: &str) -> UpdateError {
    let msg = last_error_line(stderr, stdout);
    let all = format!("{stderr}\n{stdout}").to_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| all.contains(n));
    if has(&[
        "bad signature",
        "cms_signerinfo_verify",
        "message digest",
        "content verify error",
    ]) {
        UpdateError::Corrupted(format!("the signature does not match the content: {msg}"))
    } else if has(&[
        "signature verification failed",
        "verify error",
        "certificate verify",
        "unable to get local issuer",
        "self-signed certificate",
        "self signed certificate",
        "no matching certificate",
    ]) {
        UpdateError::Signature(msg)
    } else if has(&["compatible mismatch"]) {
        UpdateError::Refused(format!("wrong compatible: {msg}"))
    } else if has(&[
        "could not connect",
        "creating proxy",
        "failed to load system config",
        "failed to initialize context",
    ]) {
        UpdateError::Rauc(format!(
            "{msg} (is this a RAUC system with its service running?)"
        ))
    } else if has(&[
        "corrupt",
        "invalid bundle",
        "exceeds bundle size",
        "too small",
        "bundle size",
        "signature size",
        "verification of data area failed",
        "hash mismatch",
        "checksum",
        "asn1",
        "failed to decode",
        "squashfs",
    ]) {
        UpdateError::Corrupted(msg)
    } else {
        UpdateError::Rauc(msg)
    }
}

/// What `rauc info` says about a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleInfo {
    pub compatible: String,
    pub version: String,
    pub images: Vec<String>,
}

impl BundleInfo {
    pub fn parse(json: &str) -> Result<Self, UpdateError> {
        let v: Value = serde_json::from_str(json.trim())
            .map_err(|e| UpdateError::Rauc(format!("unreadable `rauc info` output: {e}")))?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let images = v
            .get("images")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_object)
                    .flat_map(|o| o.keys().cloned())
                    .collect()
            })
            .unwrap_or_default();
        Ok(BundleInfo {
            compatible: s("compatible"),
            version: s("version"),
            images,
        })
    }
}

/// One slot of `rauc status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Slot {
    pub name: String,
    pub class: String,
    pub device: String,
    pub bootname: String,
    /// `booted`, `active` or `inactive`.
    pub state: String,
    /// The boot loader's mark: `good` or `bad` (empty when unknown).
    pub boot_status: String,
    /// The version of the bundle last installed into the slot, if RAUC installed it.
    pub bundle_version: Option<String>,
    pub installed: Option<String>,
    pub status: Option<String>,
}

/// `rauc status` as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemStatus {
    pub compatible: String,
    /// The booted slot's bootname.
    pub booted: String,
    /// The slot the boot loader tries first.
    pub boot_primary: String,
    pub slots: Vec<Slot>,
}

impl SystemStatus {
    pub fn parse(json: &str) -> Result<Self, UpdateError> {
        let v: Value = serde_json::from_str(json.trim())
            .map_err(|e| UpdateError::Rauc(format!("unreadable `rauc status` output: {e}")))?;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut slots = Vec::new();
        // RAUC prints `"slots": [{"rootfs.0": {...}}, ...]`.
        for entry in v
            .get("slots")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(obj) = entry.as_object() else {
                continue;
            };
            for (name, d) in obj {
                let st = d.get("slot_status");
                let bundle_version = st
                    .and_then(|st| st.get("bundle"))
                    .and_then(|b| b.get("version"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let installed = st
                    .and_then(|st| st.get("installed"))
                    .and_then(|i| i.get("timestamp"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let status = st
                    .and_then(|st| st.get("status"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                slots.push(Slot {
                    name: name.clone(),
                    class: s(d, "class"),
                    device: s(d, "device"),
                    bootname: s(d, "bootname"),
                    state: s(d, "state"),
                    boot_status: s(d, "boot_status"),
                    bundle_version,
                    installed,
                    status,
                });
            }
        }
        Ok(SystemStatus {
            compatible: s(&v, "compatible"),
            booted: s(&v, "booted"),
            boot_primary: s(&v, "boot_primary"),
            slots,
        })
    }

    /// Human-readable table for `pecbox update status`.
    pub fn render(&self, running_version: &str) -> String {
        let mut out = String::new();
        out.push_str(&format!("compatible:   {}\n", self.compatible));
        out.push_str(&format!("running:      {running_version}\n"));
        out.push_str(&format!("booted slot:  {}\n", self.booted));
        out.push_str(&format!("next boot:    {}\n", self.boot_primary));
        out.push_str(&format!(
            "{:<10} {:<8} {:<14} {:<9} {:<6} {:<10} {}\n",
            "slot", "boot", "device", "state", "mark", "version", "installed"
        ));
        for slot in &self.slots {
            let mark = if slot.boot_status.is_empty() {
                "-"
            } else {
                &slot.boot_status
            };
            out.push_str(&format!(
                "{:<10} {:<8} {:<14} {:<9} {:<6} {:<10} {}\n",
                slot.name,
                slot.bootname,
                slot.device,
                slot.state,
                mark,
                slot.bundle_version.as_deref().unwrap_or("-"),
                slot.installed.as_deref().unwrap_or("-"),
            ));
        }
        out
    }
}

/// The running system's version: the first line of `$PECBOX_VERSION_FILE` or
/// `/etc/pecbox-version` (the image version, the same string as the bundle manifest's
/// `version`); without that file, the binary's `CARGO_PKG_VERSION`.
pub fn running_version() -> String {
    let file = std::env::var_os("PECBOX_VERSION_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(VERSION_FILE));
    std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
}

/// `compatible=` of the `[system]` section of a RAUC system.conf.
pub fn system_compatible(conf: &Path) -> Option<String> {
    let text = std::fs::read_to_string(conf).ok()?;
    let mut in_system = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_system = line == "[system]";
        } else if in_system {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == "compatible" {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

/// Checks done before anything is written: the signature (by `rauc info`), the
/// payload against the signed dm-verity root hash, the compatible string and
/// anti-rollback. Returns the bundle's manifest.
pub fn precheck(rauc: &Rauc, bundle: &Path, running: &str) -> Result<BundleInfo, UpdateError> {
    if !bundle.is_file() {
        return Err(UpdateError::Other(format!(
            "{}: no such bundle file",
            bundle.display()
        )));
    }
    let info = rauc.info(bundle)?;
    // The signature is trusted; now the payload it vouches for (verity bundles).
    verity::check_payload(bundle).map_err(UpdateError::Corrupted)?;
    if let Some(system) = system_compatible(&rauc.conf_path()) {
        if system != info.compatible {
            return Err(UpdateError::Compatible {
                bundle: info.compatible,
                system,
            });
        }
    }
    let newer = match (Version::parse(&info.version), Version::parse(running)) {
        (Some(b), Some(r)) => b > r,
        (None, _) => {
            return Err(UpdateError::Refused(format!(
                "the bundle's version \"{}\" is not a version number",
                info.version
            )))
        }
        // An unparsable running version: nothing to compare; refuse to be safe.
        (Some(_), None) => false,
    };
    if !newer {
        return Err(UpdateError::NotNewer {
            bundle: info.version,
            running: running.to_string(),
        });
    }
    Ok(info)
}

/// Is this box managed by RAUC (`$PECBOX_RAUC_CONF` or /etc/rauc/system.conf exists)?
pub fn rauc_managed(rauc: &Rauc) -> bool {
    rauc.conf_path().is_file()
}
