//! The provider's certificates as the panel shows and changes them: what they are,
//! renewing the self-made ones with the box's CA, and installing a certificate and key
//! issued by a real CA. Changes are written next to the running ones and take effect
//! at the next start of the daemon (the running one keeps what it loaded).

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use chrono::{Duration, Utc};
use der::Decode;

use super::files::write_atomic;
use super::{download, Panel};
use crate::config::Config;
use crate::smime::{self, GeneratedCert};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0}")]
    Invalid(String),
    #[error("the box's CA key is not available ({0}); self-made certificates cannot be renewed")]
    NoCaKey(String),
    #[error("generating: {0}")]
    Generate(String),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Signing,
    Tls,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "signing" => Some(Self::Signing),
            "tls" => Some(Self::Tls),
            _ => None,
        }
    }
}

/// Where the daemon loads each certificate and key from (as `provider::identity` does).
pub struct Paths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub signing_cert: PathBuf,
    pub signing_key: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
}

pub fn paths(config: &Config) -> Paths {
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

/// A certificate, summarized for display.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    pub sha1: String,
    pub serial: String,
}

/// The first certificate of a PEM file.
pub fn info(pem: &str) -> Option<CertInfo> {
    let der = smime::pem_certificates(pem).ok()?.into_iter().next()?;
    info_der(&der)
}

pub fn info_der(der: &[u8]) -> Option<CertInfo> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    Some(CertInfo {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        not_before: tbs.validity.not_before.to_unix_duration().as_secs() as i64,
        not_after: tbs.validity.not_after.to_unix_duration().as_secs() as i64,
        sha1: crate::provider::index::certificate_hash(der),
        serial: tbs
            .serial_number
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

fn read(path: &std::path::Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &std::path::Path, text: &str, mode: u32) -> Result<(), CertError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_atomic(path, text.as_bytes(), mode).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether the certificate in `pem` was issued by the box's own CA.
pub fn self_made(config: &Config, pem: &str) -> bool {
    let p = paths(config);
    let (Ok(ca), Some(cert)) = (std::fs::read_to_string(&p.ca_cert), info(pem)) else {
        return false;
    };
    info(&ca).is_some_and(|ca| ca.subject == cert.issuer)
}

/// A new certificate for `role` from the box's CA, for the configuration's name,
/// domains and hostname (as `pecbox init` makes them); written over the current one.
pub fn renew(config: &Config, role: Role) -> Result<(), CertError> {
    let p = paths(config);
    let ca_pem = read(&p.ca_cert)?;
    let ca_der = smime::pem_certificates(&ca_pem)
        .ok()
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| CertError::Invalid(format!("{}: no certificate", p.ca_cert.display())))?;
    let ca = GeneratedCert {
        cert_pem: ca_pem,
        cert_der: ca_der,
        key_pkcs8_pem: read(&p.ca_key)
            .map_err(|_| CertError::NoCaKey(p.ca_key.display().to_string()))?,
    };
    let not_before = Utc::now() - Duration::days(1);
    let (cert, key_path, cert_path) = match role {
        Role::Signing => (
            smime::generate_signing_cert(
                &ca,
                &config.provider.name,
                &config.service_address(),
                not_before,
                Utc::now() + Duration::days(1095),
            ),
            &p.signing_key,
            &p.signing_cert,
        ),
        Role::Tls => {
            let mut names = vec![config.provider.hostname.clone()];
            names.extend(config.provider.domains.iter().cloned());
            names.push("localhost".into());
            let mut seen = std::collections::HashSet::new();
            names.retain(|n| seen.insert(n.to_ascii_lowercase()));
            (
                smime::generate_tls_cert(&ca, &names, not_before, Utc::now() + Duration::days(825)),
                &p.tls_key,
                &p.tls_cert,
            )
        }
    };
    let cert = cert.map_err(|e| CertError::Generate(e.to_string()))?;
    write(key_path, &cert.key_pkcs8_pem, 0o600)?;
    write(
        cert_path,
        &format!("{}{}", cert.cert_pem, ca.cert_pem),
        0o644,
    )?;
    tracing::info!(?role, "certificate renewed; effective at the next start");
    Ok(())
}

/// Installs a certificate chain (leaf first) and its key for `role`, after checking
/// that they parse and belong together.
pub fn install(
    config: &Config,
    role: Role,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(), CertError> {
    match role {
        Role::Signing => {
            smime::Signer::from_pem(cert_pem, key_pem)
                .map_err(|e| CertError::Invalid(e.to_string()))?;
        }
        Role::Tls => {
            crate::tls::server_config(cert_pem, key_pem)
                .map_err(|e| CertError::Invalid(e.to_string()))?;
        }
    }
    let p = paths(config);
    let (key_path, cert_path) = match role {
        Role::Signing => (&p.signing_key, &p.signing_cert),
        Role::Tls => (&p.tls_key, &p.tls_cert),
    };
    write(key_path, key_pem, 0o600)?;
    write(cert_path, cert_pem, 0o644)?;
    tracing::info!(
        ?role,
        "certificate installed from the panel; effective at the next start"
    );
    Ok(())
}

/// `/ca.pem`: the provider's CA certificate (public).
pub async fn ca_pem(State(panel): State<Arc<Panel>>) -> Response {
    download(
        "application/x-pem-file",
        "pecbox-ca.pem",
        panel.provider.identity.ca_pem.clone().into_bytes(),
    )
}

/// `/index-entry.ldif`: this provider's entry of the providers' index (public).
pub async fn own_entry(State(panel): State<Arc<Panel>>) -> Response {
    let ldif = crate::provider::index::entries_to_ldif(&[panel.provider.own_index_entry()]);
    download(
        "text/plain; charset=utf-8",
        "pecbox-index-entry.ldif",
        ldif.into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn renew_and_install() {
        let (_dir, provider) = super::super::test_provider("");
        let config = &provider.config;
        let p = paths(config);
        let before = std::fs::read_to_string(&p.tls_cert).unwrap();
        assert!(self_made(config, &before));
        renew(config, Role::Tls).unwrap();
        let after = std::fs::read_to_string(&p.tls_cert).unwrap();
        assert_ne!(before, after);
        let key = std::fs::read_to_string(&p.tls_key).unwrap();
        crate::tls::server_config(&after, &key).expect("the renewed pair goes together");
        let mode = std::fs::metadata(&p.tls_key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let now = Utc::now();
        let ca = smime::generate_ca("Vera CA", now - Duration::days(1), now + Duration::days(99))
            .unwrap();
        let leaf = smime::generate_signing_cert(
            &ca,
            "Alfa PEC",
            "posta-certificata@pec.alfa.test",
            now - Duration::days(1),
            now + Duration::days(30),
        )
        .unwrap();
        let other = smime::generate_signing_cert(
            &ca,
            "Alfa PEC",
            "posta-certificata@pec.alfa.test",
            now - Duration::days(1),
            now + Duration::days(30),
        )
        .unwrap();
        let chain = format!("{}{}", leaf.cert_pem, ca.cert_pem);
        assert!(matches!(
            install(config, Role::Signing, &chain, &other.key_pkcs8_pem),
            Err(CertError::Invalid(_))
        ));
        assert!(matches!(
            install(config, Role::Signing, "junk", "junk"),
            Err(CertError::Invalid(_))
        ));
        install(config, Role::Signing, &chain, &leaf.key_pkcs8_pem).unwrap();
        assert_eq!(std::fs::read_to_string(&p.signing_cert).unwrap(), chain);
        assert!(!self_made(config, &chain));
        let shown = info(&chain).unwrap();
        assert!(shown.issuer.contains("Vera CA"), "{}", shown.issuer);
    }
}
