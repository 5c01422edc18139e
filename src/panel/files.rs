//! The panel's own files below the data folder: the admin password hash
//! (`panel-admin`), and in `panel/` the one-time setup code, the secret that signs
//! password-reset links, and the holders' preferences. Names are fixed or derived from
//! a hash: nothing from a request ever becomes part of a path.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::Config;

pub fn panel_dir(config: &Config) -> PathBuf {
    config.data_dir().join("panel")
}

pub fn admin_hash_path(config: &Config) -> PathBuf {
    config.data_dir().join("panel-admin")
}

fn setup_code_path(config: &Config) -> PathBuf {
    panel_dir(config).join("setup-code")
}

fn secret_path(config: &Config) -> PathBuf {
    panel_dir(config).join("secret")
}

pub fn holders_dir(config: &Config) -> PathBuf {
    panel_dir(config).join("holders")
}

pub fn ensure_dirs(config: &Config) -> std::io::Result<()> {
    for dir in [panel_dir(config), holders_dir(config)] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename,
/// so a reader (or a crash) sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Setup is done once the admin password exists.
pub fn setup_done(config: &Config) -> bool {
    admin_hash_path(config).exists()
}

pub fn admin_hash(config: &Config) -> Option<String> {
    fs::read_to_string(admin_hash_path(config))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

pub fn set_admin_hash(config: &Config, phc: &str) -> std::io::Result<()> {
    write_atomic(
        &admin_hash_path(config),
        format!("{phc}\n").as_bytes(),
        0o600,
    )
}

/// Random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; N];
    // Without OS randomness nothing here can be secure: refuse to go on.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system provides randomness");
    bytes
}

pub fn random_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// The code that proves the wizard's user can read the box's console or data folder:
/// created once, printed at start, deleted when setup completes.
pub fn setup_code(config: &Config) -> std::io::Result<String> {
    let path = setup_code_path(config);
    if let Ok(code) = fs::read_to_string(&path) {
        let code = code.trim().to_string();
        if !code.is_empty() {
            return Ok(code);
        }
    }
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let raw = random_bytes::<8>();
    let chars: String = raw
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let code = format!("{}-{}", &chars[..4], &chars[4..]);
    write_atomic(&path, format!("{code}\n").as_bytes(), 0o600)?;
    Ok(code)
}

pub fn remove_setup_code(config: &Config) {
    let _ = fs::remove_file(setup_code_path(config));
}

/// The per-box secret of the password-reset links; created on first start.
pub fn reset_secret(config: &Config) -> std::io::Result<ring::hmac::Key> {
    let path = secret_path(config);
    let bytes = match fs::read(&path) {
        Ok(b) if b.len() >= 32 => b,
        _ => {
            let fresh = random_bytes::<32>().to_vec();
            write_atomic(&path, &fresh, 0o600)?;
            fresh
        }
    };
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes))
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp left");
    }
}
