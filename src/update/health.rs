//! After a boot: confirm pecbox works, then tell RAUC the booted slot is good.
//!
//! The daemon calls [`confirm_after_ready`] once every listener is up (after READY=1).
//! On a box without RAUC (no system.conf) it only runs the self-test. When the
//! self-test fails the slot is *not* marked good: the boot loader's tries for the new
//! slot run out on the next reboots and it falls back to the previous slot.
use chrono::Utc;

use super::{rauc_managed, Rauc};
use crate::provider::Provider;
use crate::smime::{pem_certificates, verify_detached, Signer, VerifyOptions};
use crate::store::Store;

/// What [`confirm_after_ready`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Self-test passed; not a RAUC-managed system, nothing marked.
    NotManaged,
    /// Self-test passed and `rauc status mark-good booted` succeeded (RAUC's message).
    MarkedGood(String),
}

/// The self-test: the store answers a read and a flush, and the signing key signs a
/// probe whose signature verifies against the provider CA.
pub fn self_test(store: &Store, signer: &Signer, ca_pem: &str) -> Result<(), String> {
    store
        .raw_db()
        .get(b"pecbox-health-probe")
        .map_err(|e| format!("store: read failed: {e}"))?;
    store
        .flush()
        .map_err(|e| format!("store: flush failed: {e}"))?;
    signing_probe(signer, ca_pem)
}

/// Signs a probe with `signer` and verifies it against `ca_pem`.
pub fn signing_probe(signer: &Signer, ca_pem: &str) -> Result<(), String> {
    let probe = format!("pecbox health probe {}", Utc::now().to_rfc3339());
    let sig = signer
        .sign_detached(probe.as_bytes(), Utc::now())
        .map_err(|e| format!("signing key: cannot sign: {e}"))?;
    let anchors = pem_certificates(ca_pem).map_err(|e| format!("provider CA: {e}"))?;
    let v = verify_detached(probe.as_bytes(), &sig, &VerifyOptions { anchors, at: None })
        .map_err(|e| format!("signing key: unreadable signature: {e}"))?;
    if v.is_valid() {
        Ok(())
    } else {
        Err(format!(
            "signing key: probe signature does not verify: {}",
            v.problems().join("; ")
        ))
    }
}

/// Self-test, then (only on a RAUC-managed system) `rauc status mark-good booted`.
/// Blocking (runs a process): call it from `spawn_blocking`.
pub fn confirm_after_ready(provider: &Provider) -> Result<Health, String> {
    confirm_with(
        &Rauc::from_env(),
        &provider.store,
        &provider.identity.signer,
        &provider.identity.ca_pem,
    )
}

/// [`confirm_after_ready`] with an explicit RAUC (tests).
pub fn confirm_with(
    rauc: &Rauc,
    store: &Store,
    signer: &Signer,
    ca_pem: &str,
) -> Result<Health, String> {
    self_test(store, signer, ca_pem).map_err(|e| format!("self-test failed: {e}"))?;
    if !rauc_managed(rauc) {
        return Ok(Health::NotManaged);
    }
    rauc.mark_good().map(Health::MarkedGood).map_err(|e| {
        format!(
            "self-test passed but marking the slot good failed: {e} ({})",
            rauc.conf_path().display()
        )
    })
}
