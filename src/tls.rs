//! rustls configurations for the listeners and the outbound client: TLS 1.2 and 1.3
//! only, ring as the crypto provider.
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no certificate in the PEM data")]
    NoCertificate,
    #[error("no private key (PKCS#8, PKCS#1 or SEC1) in the PEM data")]
    NoPrivateKey,
    #[error("unreadable PEM: {0}")]
    Pem(String),
    #[error("trust anchor rejected: {0}")]
    Anchor(String),
    #[error("no trust anchors: neither extra anchors nor system roots")]
    NoAnchors,
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// All certificates of a PEM bundle, in order (leaf first for a chain).
pub fn parse_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// The first private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn parse_private_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_slice(pem.as_bytes()) {
        Ok(k) => Ok(k),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey),
        Err(e) => Err(TlsError::Pem(e.to_string())),
    }
}

/// Server configuration from a certificate chain (leaf first) and its key.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = parse_certificates(cert_pem)?;
    let key = parse_private_key(key_pem)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// Client configuration trusting `extra_anchors_pem` (each may hold several
/// certificates) and, when asked, the system roots. Unreadable system certificates
/// are skipped: one broken file in /etc/ssl must not stop outbound mail.
pub fn client_config(
    extra_anchors_pem: &[String],
    use_system_roots: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for pem in extra_anchors_pem {
        for cert in parse_certificates(pem)? {
            roots
                .add(cert)
                .map_err(|e| TlsError::Anchor(e.to_string()))?;
        }
    }
    if use_system_roots {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "skipping unreadable system root");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system roots loaded");
    }
    if roots.is_empty() {
        return Err(TlsError::NoAnchors);
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub fn acceptor(config: Arc<ServerConfig>) -> tokio_rustls::TlsAcceptor {
    tokio_rustls::TlsAcceptor::from(config)
}

pub fn connector(config: Arc<ClientConfig>) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(config)
}
