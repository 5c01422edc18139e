//! Certificate helpers shared by signing and verification: parsed certificates with
//! their original bytes, RFC 4514 names, and ring-backed signature checks.
use chrono::{DateTime, Utc};
use const_oid::db::{rfc5280, rfc5912};
use const_oid::ObjectIdentifier;
use der::asn1::AnyRef;
use der::{Decode, Encode, Tag, Tagged};
use serde::Serialize;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName, SubjectKeyIdentifier};
use x509_cert::name::Name;
use x509_cert::Certificate;

use super::SmimeError;

/// Digest algorithms accepted in CMS signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
    /// An OID we do not implement (reported as an integrity problem).
    Unknown,
}

impl DigestAlg {
    /// From a digestAlgorithm OID; signature OIDs are tolerated since some signers put them there.
    pub(crate) fn from_oid(oid: &ObjectIdentifier) -> Option<DigestAlg> {
        match *oid {
            rfc5912::ID_SHA_1 | rfc5912::SHA_1_WITH_RSA_ENCRYPTION => Some(DigestAlg::Sha1),
            rfc5912::ID_SHA_256
            | rfc5912::SHA_256_WITH_RSA_ENCRYPTION
            | rfc5912::ECDSA_WITH_SHA_256 => Some(DigestAlg::Sha256),
            rfc5912::ID_SHA_384
            | rfc5912::SHA_384_WITH_RSA_ENCRYPTION
            | rfc5912::ECDSA_WITH_SHA_384 => Some(DigestAlg::Sha384),
            rfc5912::ID_SHA_512
            | rfc5912::SHA_512_WITH_RSA_ENCRYPTION
            | rfc5912::ECDSA_WITH_SHA_512 => Some(DigestAlg::Sha512),
            _ => None,
        }
    }

    /// None for [`DigestAlg::Unknown`].
    pub(crate) fn digest(self, data: &[u8]) -> Option<Vec<u8>> {
        let alg = match self {
            DigestAlg::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            DigestAlg::Sha256 => &ring::digest::SHA256,
            DigestAlg::Sha384 => &ring::digest::SHA384,
            DigestAlg::Sha512 => &ring::digest::SHA512,
            DigestAlg::Unknown => return None,
        };
        Some(ring::digest::digest(alg, data).as_ref().to_vec())
    }

    /// The RFC 5751 `micalg` name.
    pub fn micalg(self) -> &'static str {
        match self {
            DigestAlg::Sha1 => "sha-1",
            DigestAlg::Sha256 => "sha-256",
            DigestAlg::Sha384 => "sha-384",
            DigestAlg::Sha512 => "sha-512",
            DigestAlg::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for DigestAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DigestAlg::Sha1 => "sha1",
            DigestAlg::Sha256 => "sha256",
            DigestAlg::Sha384 => "sha384",
            DigestAlg::Sha512 => "sha512",
            DigestAlg::Unknown => "unknown",
        })
    }
}

impl Serialize for DigestAlg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How a signature value is to be checked; the key type comes from the SPKI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigScheme {
    RsaPkcs1(DigestAlg),
    Ecdsa(DigestAlg),
}

impl SigScheme {
    /// `digest` is the CMS digestAlgorithm, used when the OID names only the key type.
    pub(crate) fn from_oid(oid: &ObjectIdentifier, digest: Option<DigestAlg>) -> Option<Self> {
        let named = DigestAlg::from_oid(oid);
        match *oid {
            rfc5912::RSA_ENCRYPTION => digest.map(SigScheme::RsaPkcs1),
            rfc5912::SHA_1_WITH_RSA_ENCRYPTION
            | rfc5912::SHA_256_WITH_RSA_ENCRYPTION
            | rfc5912::SHA_384_WITH_RSA_ENCRYPTION
            | rfc5912::SHA_512_WITH_RSA_ENCRYPTION => named.map(SigScheme::RsaPkcs1),
            rfc5912::ID_EC_PUBLIC_KEY => digest.map(SigScheme::Ecdsa),
            rfc5912::ECDSA_WITH_SHA_256 | rfc5912::ECDSA_WITH_SHA_384 => {
                named.map(SigScheme::Ecdsa)
            }
            _ => None,
        }
    }
}

/// Why a signature check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SigFailure {
    Unsupported(String),
    Invalid,
}

impl std::fmt::Display for SigFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigFailure::Unsupported(why) => f.write_str(why),
            SigFailure::Invalid => f.write_str("signature does not verify"),
        }
    }
}

/// Verifies `sig` over `msg` with the key in `spki`.
pub(crate) fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    scheme: SigScheme,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), SigFailure> {
    use ring::signature as rs;
    let unsupported = |s: String| SigFailure::Unsupported(s);
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| unsupported("public key BIT STRING has unused bits".into()))?;
    let alg: &'static dyn rs::VerificationAlgorithm = match (spki.algorithm.oid, scheme) {
        // 1024-bit keys are accepted: providers used them until about 2015.
        (rfc5912::RSA_ENCRYPTION, SigScheme::RsaPkcs1(d)) => match d {
            DigestAlg::Unknown => return Err(unsupported("unknown digest".into())),
            DigestAlg::Sha1 => &rs::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            DigestAlg::Sha256 => &rs::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            DigestAlg::Sha384 => &rs::RSA_PKCS1_2048_8192_SHA384,
            DigestAlg::Sha512 => &rs::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        },
        (rfc5912::ID_EC_PUBLIC_KEY, SigScheme::Ecdsa(d)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| unsupported("EC key without a named curve".into()))?;
            match (curve, d) {
                (rfc5912::SECP_256_R_1, DigestAlg::Sha256) => &rs::ECDSA_P256_SHA256_ASN1,
                (rfc5912::SECP_256_R_1, DigestAlg::Sha384) => &rs::ECDSA_P256_SHA384_ASN1,
                (rfc5912::SECP_384_R_1, DigestAlg::Sha256) => &rs::ECDSA_P384_SHA256_ASN1,
                (rfc5912::SECP_384_R_1, DigestAlg::Sha384) => &rs::ECDSA_P384_SHA384_ASN1,
                (c, d) => {
                    return Err(unsupported(format!(
                        "unsupported ECDSA curve/digest {c}/{d}"
                    )))
                }
            }
        }
        (k, s) => {
            return Err(unsupported(format!(
                "key type {k} does not match signature scheme {s:?}"
            )))
        }
    };
    rs::UnparsedPublicKey::new(alg, key)
        .verify(msg, sig)
        .map_err(|_| SigFailure::Invalid)
}

/// A parsed certificate that keeps the bytes its signature covers.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub tbs_der: Vec<u8>,
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
}

impl CertInfo {
    pub(crate) fn parse(der: &[u8]) -> Result<CertInfo, SmimeError> {
        let bad = |e: der::Error| SmimeError::Certificate(e.to_string());
        let cert = Certificate::from_der(der).map_err(bad)?;
        // Original TBS bytes: re-encoding a decoded TBS may not reproduce what was signed.
        let parts = Vec::<AnyRef<'_>>::from_der(der).map_err(bad)?;
        let tbs_der = parts
            .first()
            .ok_or_else(|| SmimeError::Certificate("empty certificate".into()))?
            .to_der()
            .map_err(bad)?;
        let subject_der = cert.tbs_certificate.subject.to_der().map_err(bad)?;
        let issuer_der = cert.tbs_certificate.issuer.to_der().map_err(bad)?;
        Ok(CertInfo {
            der: der.to_vec(),
            cert,
            tbs_der,
            subject_der,
            issuer_der,
        })
    }

    pub(crate) fn subject(&self) -> String {
        format_name(&self.cert.tbs_certificate.subject)
    }

    pub(crate) fn issuer(&self) -> String {
        format_name(&self.cert.tbs_certificate.issuer)
    }

    pub(crate) fn not_before(&self) -> DateTime<Utc> {
        to_chrono(&self.cert.tbs_certificate.validity.not_before)
    }

    pub(crate) fn not_after(&self) -> DateTime<Utc> {
        to_chrono(&self.cert.tbs_certificate.validity.not_after)
    }

    pub(crate) fn serial_hex(&self) -> String {
        let bytes = self.cert.tbs_certificate.serial_number.as_bytes();
        let bytes = match bytes {
            [0, rest @ ..] if !rest.is_empty() => rest,
            b => b,
        };
        hex(bytes)
    }

    pub(crate) fn sha1_hex(&self) -> String {
        hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.der).as_ref())
    }

    /// The decoded extension `oid`: None if absent, Some(Err) if malformed.
    pub(crate) fn extension<'a, T: Decode<'a>>(
        &'a self,
        oid: ObjectIdentifier,
    ) -> Option<Result<T, String>> {
        let ext = self
            .cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)?;
        Some(T::from_der(ext.extn_value.as_bytes()).map_err(|e| format!("extension {oid}: {e}")))
    }

    pub(crate) fn emails(&self) -> Vec<String> {
        match self.extension::<SubjectAltName>(rfc5280::ID_CE_SUBJECT_ALT_NAME) {
            Some(Ok(san)) => san
                .0
                .iter()
                .filter_map(|n| match n {
                    GeneralName::Rfc822Name(s) => Some(s.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn subject_key_id(&self) -> Option<Vec<u8>> {
        match self.extension::<SubjectKeyIdentifier>(rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER) {
            Some(Ok(ski)) => Some(ski.0.as_bytes().to_vec()),
            _ => None,
        }
    }

    /// basicConstraints cA, and keyCertSign if a KeyUsage is present.
    pub(crate) fn can_issue_certs(&self) -> bool {
        let ca = matches!(
            self.extension::<BasicConstraints>(rfc5280::ID_CE_BASIC_CONSTRAINTS),
            Some(Ok(BasicConstraints { ca: true, .. }))
        );
        let ku_ok = match self.extension::<KeyUsage>(rfc5280::ID_CE_KEY_USAGE) {
            None => true,
            Some(Ok(ku)) => ku.key_cert_sign(),
            Some(Err(_)) => false,
        };
        ca && ku_ok
    }

    /// Checks this certificate's signature with `issuer`'s public key.
    pub(crate) fn verify_issued_by(&self, issuer: &CertInfo) -> Result<(), String> {
        let oid = self.cert.signature_algorithm.oid;
        let scheme = SigScheme::from_oid(&oid, None)
            .ok_or_else(|| format!("unsupported certificate signature algorithm {oid}"))?;
        let sig = self
            .cert
            .signature
            .as_bytes()
            .ok_or("signature BIT STRING has unused bits")?;
        verify_signature(
            &issuer.cert.tbs_certificate.subject_public_key_info,
            scheme,
            &self.tbs_der,
            sig,
        )
        .map_err(|e| e.to_string())
    }
}

pub(crate) fn to_chrono(t: &x509_cert::time::Time) -> DateTime<Utc> {
    DateTime::<Utc>::from(t.to_system_time())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses every CERTIFICATE block of a PEM bundle into DER.
pub fn pem_certificates(pem_text: &str) -> Result<Vec<Vec<u8>>, SmimeError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| SmimeError::Pem(e.to_string()))?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE" || p.tag() == "X509 CERTIFICATE")
        .map(|p| p.into_contents())
        .collect();
    if certs.is_empty() {
        return Err(SmimeError::Pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// RFC 4514 string (most specific RDN first), with `", "` separators for readability.
pub(crate) fn format_name(name: &Name) -> String {
    name.0
        .iter()
        .rev()
        .map(|rdn| {
            rdn.0
                .iter()
                .map(|atv| format!("{}={}", attr_name(&atv.oid), attr_value(&atv.value)))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn attr_name(oid: &ObjectIdentifier) -> String {
    let short = match oid.to_string().as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "T",
        "2.5.4.42" => "GN",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        other => return const_oid::db::DB.by_oid(oid).unwrap_or(other).to_string(),
    };
    short.to_string()
}

fn attr_value(value: &der::asn1::Any) -> String {
    let bytes = value.value();
    let text = match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        // T.61 in practice carries Latin-1.
        Tag::TeletexString => bytes.iter().map(|&b| char::from(b)).collect(),
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => return format!("#{}", hex(&value.to_der().unwrap_or_default())),
    };
    escape_rfc4514(&text)
}

fn escape_rfc4514(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        match c {
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
