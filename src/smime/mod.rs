//! S/MIME for PEC: detached `multipart/signed` (RFC 5751/1847) over CMS SignedData
//! (RFC 5652). ring does the arithmetic; the RustCrypto `cms`/`x509-cert`/`der` crates
//! the structures.
mod ber;
pub mod certs;
pub mod chain;
mod error;
pub mod multipart;
pub mod signer;
#[cfg(test)]
mod testutil;
pub mod verify;
mod x509;

pub use certs::{
    generate_ca, generate_signing_cert, generate_signing_cert_with, generate_tls_cert,
    GeneratedCert, SigningCertOptions,
};
pub use chain::ChainStatus;
pub use error::{IntegrityError, SmimeError};
pub use multipart::{
    build_signed_message, build_signed_message_owned, canonicalize_crlf, split_signed, SignedParts,
};
pub use signer::Signer;
pub use verify::{verify_detached, verify_message, SignerSummary, Verification, VerifyOptions};
pub use x509::{pem_certificates, DigestAlg};
