//! The provider's keys and certificates (interface.md §4): its CA, the S/MIME signing
//! certificate and the TLS certificate. `init` creates what the configuration does not
//! name; it never overwrites a key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration, Utc};

use crate::config::Config;
use crate::smime::{self, GeneratedCert, Signer};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("generating certificates: {0}")]
    Generate(String),
    #[error("{0} is missing; run `pecbox init` first")]
    Missing(PathBuf),
}

/// What the running provider signs and serves TLS with.
pub struct Identity {
    pub signer: Signer,
    /// PEM of the provider CA (public), the default trust anchor of `verify`.
    pub ca_pem: String,
    pub tls_cert_pem: String,
    pub tls_key_pem: String,
    pub tls_server: Arc<rustls::ServerConfig>,
}

struct Paths {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    signing_cert: PathBuf,
    signing_key: PathBuf,
    tls_cert: PathBuf,
    tls_key: PathBuf,
}

fn paths(config: &Config) -> Paths {
    let certs = config.certs_dir();
    let pick = |named: &Option<PathBuf>, default: &str| {
        named
            .as_deref()
            .map(|p| config.resolve(p))
            .unwrap_or_else(|| certs.join(default))
    };
    Paths {
        ca_cert: certs.join("ca.pem"),
        ca_key: certs.join("ca.key"),
        signing_cert: pick(&config.signing.cert, "signing.pem"),
        signing_key: pick(&config.signing.key, "signing.key"),
        tls_cert: pick(&config.tls.cert, "tls.pem"),
        tls_key: pick(&config.tls.key, "tls.key"),
    }
}

/// Creates the data folder and every missing certificate; returns what it created.
pub fn init(config: &Config) -> Result<Vec<String>, IdentityError> {
    let mut created = Vec::new();
    let data = config.data_dir();
    for dir in [data.clone(), config.certs_dir()] {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|source| IdentityError::Io {
                    path: dir.clone(),
                    source,
                })?;
            created.push(format!("folder {}", dir.display()));
        }
    }
    let p = paths(config);
    let name = &config.provider.name;
    let not_before = Utc::now() - Duration::days(1);
    let ca = if p.ca_cert.exists() && p.ca_key.exists() {
        let cert_pem = read(&p.ca_cert)?;
        let cert_der = smime::pem_certificates(&cert_pem)
            .ok()
            .and_then(|c| c.into_iter().next())
            .ok_or_else(|| IdentityError::Invalid {
                path: p.ca_cert.clone(),
                reason: "no certificate in it".into(),
            })?;
        GeneratedCert {
            cert_pem,
            cert_der,
            key_pkcs8_pem: read(&p.ca_key)?,
        }
    } else if p.ca_cert.exists() || p.ca_key.exists() {
        return Err(IdentityError::Invalid {
            path: p.ca_cert.clone(),
            reason: "the CA certificate and its key must both exist or both be absent".into(),
        });
    } else {
        let ca = smime::generate_ca(name, not_before, Utc::now() + Duration::days(3650))
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        write_new(&p.ca_key, &ca.key_pkcs8_pem, 0o600)?;
        write_new(&p.ca_cert, &ca.cert_pem, 0o644)?;
        created.push(format!("provider CA {}", p.ca_cert.display()));
        ca
    };
    if !p.signing_key.exists() && !p.signing_cert.exists() {
        let cert = smime::generate_signing_cert(
            &ca,
            name,
            &config.service_address(),
            not_before,
            Utc::now() + Duration::days(1095),
        )
        .map_err(|e| IdentityError::Generate(e.to_string()))?;
        write_new(&p.signing_key, &cert.key_pkcs8_pem, 0o600)?;
        write_new(
            &p.signing_cert,
            &format!("{}{}", cert.cert_pem, ca.cert_pem),
            0o644,
        )?;
        created.push(format!(
            "S/MIME signing certificate {} for {}",
            p.signing_cert.display(),
            config.service_address()
        ));
    }
    if !p.tls_key.exists() && !p.tls_cert.exists() {
        let mut names = vec![config.provider.hostname.clone()];
        names.extend(config.provider.domains.iter().cloned());
        names.push("localhost".into());
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.to_ascii_lowercase()));
        let cert =
            smime::generate_tls_cert(&ca, &names, not_before, Utc::now() + Duration::days(825))
                .map_err(|e| IdentityError::Generate(e.to_string()))?;
        write_new(&p.tls_key, &cert.key_pkcs8_pem, 0o600)?;
        write_new(
            &p.tls_cert,
            &format!("{}{}", cert.cert_pem, ca.cert_pem),
            0o644,
        )?;
        created.push(format!(
            "TLS certificate {} for {}",
            p.tls_cert.display(),
            names.join(", ")
        ));
    }
    Ok(created)
}

/// Loads the identity `init` made (or the configuration names).
pub fn load(config: &Config) -> Result<Identity, IdentityError> {
    let p = paths(config);
    for path in [
        &p.ca_cert,
        &p.signing_cert,
        &p.signing_key,
        &p.tls_cert,
        &p.tls_key,
    ] {
        if !path.exists() {
            return Err(IdentityError::Missing(path.clone()));
        }
    }
    let signer =
        Signer::from_pem(&read(&p.signing_cert)?, &read(&p.signing_key)?).map_err(|e| {
            IdentityError::Invalid {
                path: p.signing_cert.clone(),
                reason: e.to_string(),
            }
        })?;
    let tls_cert_pem = read(&p.tls_cert)?;
    let tls_key_pem = read(&p.tls_key)?;
    let tls_server = crate::tls::server_config(&tls_cert_pem, &tls_key_pem).map_err(|e| {
        IdentityError::Invalid {
            path: p.tls_cert.clone(),
            reason: e.to_string(),
        }
    })?;
    Ok(Identity {
        signer,
        ca_pem: read(&p.ca_cert)?,
        tls_cert_pem,
        tls_key_pem,
        tls_server,
    })
}

fn read(path: &Path) -> Result<String, IdentityError> {
    fs::read_to_string(path).map_err(|source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file that must not exist yet (a key is never overwritten).
fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}
