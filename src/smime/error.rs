//! Error types of the S/MIME module.
use serde::Serialize;

/// Errors that stop an S/MIME operation altogether.
///
/// Verification problems that still leave something to report (bad digest, untrusted
/// chain, ...) are not errors: they are reported inside [`super::Verification`].
#[derive(Debug, thiserror::Error)]
pub enum SmimeError {
    #[error("not a multipart/signed message")]
    NotSigned,
    #[error("multipart/signed without a boundary parameter")]
    MissingBoundary,
    #[error("unsupported multipart/signed protocol {0:?}")]
    UnsupportedProtocol(String),
    #[error("no signed entity between the multipart/signed boundaries")]
    MissingContent,
    #[error("no application/pkcs7-signature part")]
    MissingSignaturePart,
    #[error("the signature part is not valid base64: {0}")]
    BadBase64(String),
    #[error("malformed CMS signature: {0}")]
    Cms(String),
    #[error("invalid certificate: {0}")]
    Certificate(String),
    #[error("invalid private key: {0}")]
    Key(String),
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("certificate generation failed: {0}")]
    CertGen(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Why the signature does not prove the content is what the signer signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum IntegrityError {
    #[error("the signature has no SignerInfo")]
    NoSignerInfo,
    #[error("the signer's certificate is not among the certificates in the signature")]
    SignerCertificateNotFound,
    #[error("unsupported digest algorithm {0}")]
    UnsupportedDigest(String),
    #[error("unsupported signature algorithm: {0}")]
    UnsupportedSignatureAlgorithm(String),
    #[error("the signed attributes lack messageDigest")]
    MissingMessageDigest,
    #[error("the content digest differs from the signed messageDigest: the content was altered")]
    DigestMismatch,
    #[error("signed contentType is {0}, expected id-data")]
    WrongContentType(String),
    #[error("malformed signed attributes: {0}")]
    MalformedAttributes(String),
    #[error("the signature value does not verify with the signer's public key")]
    BadSignature,
}
