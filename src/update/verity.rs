//! The payload check of a `format=verity` bundle, before RAUC writes anything.
//!
//! A verity bundle is `squashfs payload | dm-verity hash tree | CMS signature | u64 BE
//! signature size`. The signature (checked by `rauc info`) covers the manifest, whose
//! `[bundle]` section holds the hash tree's size, the salt and the dm-verity root hash. RAUC
//! itself checks payload blocks only as it reads them while installing; recomputing the
//! root hash here refuses a damaged download before the inactive slot is touched.
//! Format: dm-verity version 1, SHA-256, 4096-byte data and hash blocks, salt first.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::OctetString;
use der::{Decode, Encode};

const BLOCK: usize = 4096;

/// What the signed manifest says about the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityParams {
    /// `verity-size`: the size of the hash tree that follows the payload.
    pub tree_size: u64,
    pub salt: Vec<u8>,
    pub root_hash: Vec<u8>,
}

/// The manifest inside the bundle's CMS signature (not verified here: `rauc info` did).
pub fn signed_manifest(bundle: &Path) -> Result<String, String> {
    let mut f = File::open(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if len < 8 {
        return Err("too short for a bundle".into());
    }
    let sig_len = signature_len(bundle)?;
    let mut sig = vec![0u8; sig_len as usize];
    f.seek(SeekFrom::Start(len - 8 - sig_len))
        .map_err(|e| e.to_string())?;
    f.read_exact(&mut sig).map_err(|e| e.to_string())?;
    let ci = ContentInfo::from_der(&sig).map_err(|e| format!("signature: {e}"))?;
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| format!("signature: {e}"))?;
    let econtent = sd
        .encap_content_info
        .econtent
        .ok_or("the signature carries no manifest (a detached, plain bundle)")?;
    let octets: OctetString = econtent
        .decode_as()
        .or_else(|_| OctetString::from_der(&econtent.to_der().unwrap_or_default()))
        .map_err(|e| format!("manifest: {e}"))?;
    String::from_utf8(octets.into_bytes()).map_err(|e| format!("manifest: {e}"))
}

/// The CMS signature's length, from the bundle's last 8 bytes (big-endian).
fn signature_len(bundle: &Path) -> Result<u64, String> {
    let mut f = File::open(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if len < 8 {
        return Err("too short for a bundle".into());
    }
    let mut size = [0u8; 8];
    f.seek(SeekFrom::Start(len - 8))
        .map_err(|e| e.to_string())?;
    f.read_exact(&mut size).map_err(|e| e.to_string())?;
    let sig_len = u64::from_be_bytes(size);
    if sig_len == 0 || sig_len > len - 8 || sig_len > 16 << 20 {
        return Err(format!("signature size {sig_len} does not fit the bundle"));
    }
    Ok(sig_len)
}

/// `[bundle]` verity parameters of a manifest; None for a non-verity bundle.
pub fn verity_params(manifest: &str) -> Result<Option<VerityParams>, String> {
    let mut in_bundle = false;
    let (mut format, mut hash, mut salt, mut size) = (None, None, None, None);
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bundle = line == "[bundle]";
            continue;
        }
        if !in_bundle {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "format" => format = Some(v),
                "verity-hash" => hash = Some(v),
                "verity-salt" => salt = Some(v),
                "verity-size" => size = Some(v),
                _ => {}
            }
        }
    }
    if format.as_deref() != Some("verity") {
        return Ok(None);
    }
    let hex = |what: &str, v: Option<String>| -> Result<Vec<u8>, String> {
        let v = v.ok_or(format!("manifest without {what}"))?;
        (0..v.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(v.get(i..i + 2).unwrap_or("x"), 16))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("manifest: {what} is not hex"))
    };
    Ok(Some(VerityParams {
        root_hash: hex("verity-hash", hash)?,
        salt: hex("verity-salt", salt)?,
        tree_size: size
            .ok_or("manifest without verity-size")?
            .parse()
            .map_err(|_| "manifest: verity-size is not a number".to_string())?,
    }))
}

fn salted(salt: &[u8], block: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(salt);
    ctx.update(block);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The dm-verity root hash of the first `size` bytes of `data` (a multiple of 4096).
pub fn root_hash(mut data: impl Read, size: u64, salt: &[u8]) -> Result<[u8; 32], String> {
    if size == 0 || !size.is_multiple_of(BLOCK as u64) {
        return Err(format!("verity-size {size} is not a multiple of {BLOCK}"));
    }
    let mut level: Vec<u8> = Vec::with_capacity((size / BLOCK as u64 * 32) as usize);
    let mut block = vec![0u8; BLOCK];
    for _ in 0..size / BLOCK as u64 {
        data.read_exact(&mut block)
            .map_err(|e| format!("payload shorter than verity-size: {e}"))?;
        level.extend_from_slice(&salted(salt, &block));
    }
    loop {
        // Pack the hashes into zero-padded hash blocks; hash each block for the next level.
        let padded = level.len().div_ceil(BLOCK) * BLOCK;
        level.resize(padded, 0);
        if padded == BLOCK {
            return Ok(salted(salt, &level));
        }
        level = level.chunks(BLOCK).flat_map(|b| salted(salt, b)).collect();
    }
}

/// Recomputes the payload's root hash and compares it with the signed manifest's.
/// Ok(false) for a bundle that is not in verity format (nothing to check).
pub fn check_payload(bundle: &Path) -> Result<bool, String> {
    let manifest = signed_manifest(bundle)?;
    let Some(p) = verity_params(&manifest)? else {
        return Ok(false);
    };
    let f = File::open(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let sig_len = signature_len(bundle)?;
    let payload = len
        .checked_sub(8 + sig_len + p.tree_size)
        .ok_or("the bundle is shorter than its signed hash tree")?;
    let got = root_hash(
        std::io::BufReader::with_capacity(1 << 20, f),
        payload,
        &p.salt,
    )?;
    if got.as_slice() == p.root_hash.as_slice() {
        Ok(true)
    } else {
        Err("the payload does not match the signed dm-verity root hash".into())
    }
}
