//! Test/bootstrap certificates: a provider CA, the PEC signing certificate
//! (pec-rules §9.1) and TLS server certificates, generated with rcgen.
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use const_oid::db::rfc5280;
use der::asn1::OctetString;
use der::{Encode, Tag, Tagged};
use rcgen::string::{Ia5String, PrintableString};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use ring::rand::{SecureRandom, SystemRandom};
use rsa::pkcs8::EncodePrivateKey;

use super::x509::CertInfo;
use super::SmimeError;

/// A certificate with its PKCS#8 private key.
#[derive(Debug, Clone)]
pub struct GeneratedCert {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pkcs8_pem: String,
}

/// Knobs for [`generate_signing_cert_with`]; the default is the §9.1 profile.
#[derive(Debug, Clone)]
pub struct SigningCertOptions {
    /// Set the digitalSignature key usage (off only to test rejection: then the
    /// KeyUsage carries keyEncipherment alone).
    pub digital_signature: bool,
    /// Add the emailProtection extended key usage.
    pub email_protection: bool,
}

impl Default for SigningCertOptions {
    fn default() -> Self {
        SigningCertOptions {
            digital_signature: true,
            email_protection: true,
        }
    }
}

fn gen_err(e: impl std::fmt::Display) -> SmimeError {
    SmimeError::CertGen(e.to_string())
}

/// A fresh RSA-2048 key as rcgen key pair and PKCS#8 PEM (ring cannot generate RSA keys).
fn new_rsa_key() -> Result<(KeyPair, String), SmimeError> {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(gen_err)?;
    let der = key.to_pkcs8_der().map_err(gen_err)?;
    let kp = KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &PKCS_RSA_SHA256)
        .map_err(gen_err)?;
    let pem = pem_lf("PRIVATE KEY", der.as_bytes().to_vec());
    Ok((kp, pem))
}

fn pem_lf(tag: &str, der: Vec<u8>) -> String {
    let cfg = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der), cfg)
}

fn random_serial() -> Result<SerialNumber, SmimeError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| gen_err("random generator failure"))?;
    // positive and without a leading zero byte
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn base_params(
    dn: DistinguishedName,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<CertificateParams, SmimeError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.not_before = SystemTime::from(not_before).into();
    params.not_after = SystemTime::from(not_after).into();
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

fn provider_dn(provider_name: &str, cn: String) -> Result<DistinguishedName, SmimeError> {
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CountryName,
        DnValue::PrintableString(PrintableString::try_from("IT").map_err(gen_err)?),
    );
    dn.push(DnType::OrganizationName, provider_name);
    dn.push(DnType::CommonName, cn);
    Ok(dn)
}

/// rcgen only writes the SKI on CA certificates, so leaves get it as a custom extension.
fn ski_extension(params: &CertificateParams, key: &KeyPair) -> Result<CustomExtension, SmimeError> {
    let id = OctetString::new(params.key_identifier(key)).map_err(gen_err)?;
    let arcs: Vec<u64> = rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER
        .arcs()
        .map(u64::from)
        .collect();
    Ok(CustomExtension::from_oid_content(
        &arcs,
        id.to_der().map_err(gen_err)?,
    ))
}

/// Rebuilds an rcgen issuer from a generated CA: subject copied attribute by attribute
/// (same string types, so issuer/subject names match byte for byte) and the CA's SKI
/// reused as the children's AKI.
fn ca_issuer(ca: &GeneratedCert) -> Result<Issuer<'static, KeyPair>, SmimeError> {
    let info = CertInfo::parse(&ca.cert_der)?;
    let mut dn = DistinguishedName::new();
    for rdn in info.cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            let arcs: Vec<u64> = atv.oid.arcs().map(u64::from).collect();
            let text = String::from_utf8(atv.value.value().to_vec()).map_err(gen_err)?;
            let value = match atv.value.tag() {
                Tag::PrintableString => {
                    DnValue::PrintableString(PrintableString::try_from(text).map_err(gen_err)?)
                }
                Tag::Ia5String => DnValue::Ia5String(Ia5String::try_from(text).map_err(gen_err)?),
                Tag::Utf8String => DnValue::Utf8String(text),
                t => return Err(gen_err(format!("unsupported CA name string type {t}"))),
            };
            dn.push(DnType::from_oid(&arcs), value);
        }
    }
    let key =
        if let Ok(k) = KeyPair::from_pkcs8_pem_and_sign_algo(&ca.key_pkcs8_pem, &PKCS_RSA_SHA256) {
            k
        } else {
            KeyPair::from_pkcs8_pem_and_sign_algo(&ca.key_pkcs8_pem, &PKCS_ECDSA_P256_SHA256)
                .map_err(gen_err)?
        };
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    if let Some(ski) = info.subject_key_id() {
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
    }
    Ok(Issuer::new(params, key))
}

/// Self-signed RSA-2048 CA `C=IT, O=<provider_name>, CN=<provider_name> CA`.
pub fn generate_ca(
    provider_name: &str,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<GeneratedCert, SmimeError> {
    let (key, key_pem) = new_rsa_key()?;
    let dn = provider_dn(provider_name, format!("{provider_name} CA"))?;
    let mut params = base_params(dn, not_before, not_after)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).map_err(gen_err)?;
    Ok(GeneratedCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pkcs8_pem: key_pem,
    })
}

/// The PEC provider signing certificate (pec-rules §9.1).
pub fn generate_signing_cert(
    ca: &GeneratedCert,
    provider_name: &str,
    email: &str,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<GeneratedCert, SmimeError> {
    generate_signing_cert_with(
        ca,
        provider_name,
        email,
        not_before,
        not_after,
        &SigningCertOptions::default(),
    )
}

/// [`generate_signing_cert`] with options (tests use it for non-conforming certificates).
pub fn generate_signing_cert_with(
    ca: &GeneratedCert,
    provider_name: &str,
    email: &str,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    opts: &SigningCertOptions,
) -> Result<GeneratedCert, SmimeError> {
    let issuer = ca_issuer(ca)?;
    let (key, key_pem) = new_rsa_key()?;
    let dn = provider_dn(provider_name, format!("Posta Certificata {provider_name}"))?;
    let mut params = base_params(dn, not_before, not_after)?;
    // IsCa::NoCa: no BasicConstraints at all, as §9.1 requires.
    params.is_ca = IsCa::NoCa;
    params.key_usages = if opts.digital_signature {
        vec![KeyUsagePurpose::DigitalSignature]
    } else {
        vec![KeyUsagePurpose::KeyEncipherment]
    };
    if opts.email_protection {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
    }
    params.subject_alt_names = vec![SanType::Rfc822Name(
        Ia5String::try_from(email).map_err(gen_err)?,
    )];
    params.use_authority_key_identifier_extension = true;
    params.custom_extensions = vec![ski_extension(&params, &key)?];
    let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
    Ok(GeneratedCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pkcs8_pem: key_pem,
    })
}

/// ECDSA P-256 TLS server certificate for `hostnames` (first one is the CN).
pub fn generate_tls_cert(
    ca: &GeneratedCert,
    hostnames: &[String],
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<GeneratedCert, SmimeError> {
    let first = hostnames
        .first()
        .ok_or_else(|| gen_err("no hostname given"))?;
    let issuer = ca_issuer(ca)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, first.as_str());
    let mut params = base_params(dn, not_before, not_after)?;
    params.subject_alt_names = hostnames
        .iter()
        .map(|h| {
            Ok(SanType::DnsName(
                Ia5String::try_from(h.as_str()).map_err(gen_err)?,
            ))
        })
        .collect::<Result<_, SmimeError>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.custom_extensions = vec![ski_extension(&params, &key)?];
    let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
    Ok(GeneratedCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pkcs8_pem: key.serialize_pem(),
    })
}

/// An intermediate CA under `ca` (tests of multi-level paths).
#[cfg(test)]
pub(crate) fn generate_intermediate_ca(
    ca: &GeneratedCert,
    name: &str,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<GeneratedCert, SmimeError> {
    let issuer = ca_issuer(ca)?;
    let (key, key_pem) = new_rsa_key()?;
    let dn = provider_dn(name, format!("{name} Intermediate CA"))?;
    let mut params = base_params(dn, not_before, not_after)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
    Ok(GeneratedCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pkcs8_pem: key_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smime::testutil::{fixture, years};
    use x509_cert::ext::pkix::{
        AuthorityKeyIdentifier, ExtendedKeyUsage, KeyUsage, SubjectAltName,
    };

    fn ext_critical(info: &CertInfo, oid: const_oid::ObjectIdentifier) -> Option<bool> {
        info.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.critical)
    }

    #[test]
    fn ca_profile() {
        let f = fixture();
        let ca = CertInfo::parse(&f.ca.cert_der).unwrap();
        assert_eq!(ca.subject(), "CN=Test PEC CA, O=Test PEC, C=IT");
        assert_eq!(ca.subject_der, ca.issuer_der);
        assert!(ca.can_issue_certs());
        assert!(ca.subject_key_id().is_some());
        ca.verify_issued_by(&ca).unwrap();
        assert!(f.ca.cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(f
            .ca
            .key_pkcs8_pem
            .starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }

    #[test]
    fn signing_cert_follows_pec_rules_9_1() {
        let f = fixture();
        let ca = CertInfo::parse(&f.ca.cert_der).unwrap();
        let leaf = CertInfo::parse(&f.leaf.cert_der).unwrap();
        assert_eq!(
            leaf.subject(),
            "CN=Posta Certificata Test PEC, O=Test PEC, C=IT"
        );
        assert_eq!(leaf.issuer_der, ca.subject_der);
        leaf.verify_issued_by(&ca).unwrap();
        assert_eq!(
            leaf.cert.signature_algorithm.oid,
            const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION
        );
        let ku: KeyUsage = leaf.extension(rfc5280::ID_CE_KEY_USAGE).unwrap().unwrap();
        assert!(ku.digital_signature());
        assert_eq!(ext_critical(&leaf, rfc5280::ID_CE_KEY_USAGE), Some(true));
        let eku: ExtendedKeyUsage = leaf
            .extension(rfc5280::ID_CE_EXT_KEY_USAGE)
            .unwrap()
            .unwrap();
        assert_eq!(eku.0, vec![rfc5280::ID_KP_EMAIL_PROTECTION]);
        assert!(leaf
            .extension::<SubjectAltName>(rfc5280::ID_CE_SUBJECT_ALT_NAME)
            .is_some());
        assert_eq!(leaf.emails(), vec!["posta-certificata@pec.test.example"]);
        assert_eq!(
            ext_critical(&leaf, rfc5280::ID_CE_SUBJECT_ALT_NAME),
            Some(false)
        );
        assert!(leaf.subject_key_id().is_some());
        let aki: AuthorityKeyIdentifier = leaf
            .extension(rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER)
            .unwrap()
            .unwrap();
        assert_eq!(
            aki.key_identifier.map(|k| k.as_bytes().to_vec()),
            ca.subject_key_id()
        );
        assert_eq!(ext_critical(&leaf, rfc5280::ID_CE_BASIC_CONSTRAINTS), None);
        assert!(!leaf.can_issue_certs());
        let spki = &leaf.cert.tbs_certificate.subject_public_key_info;
        // 2048-bit modulus: 270-byte RSAPublicKey
        assert_eq!(spki.subject_public_key.raw_bytes().len(), 270);
    }

    #[test]
    fn options_drop_digital_signature() {
        let f = fixture();
        let (nb, na) = years(1);
        let opts = SigningCertOptions {
            digital_signature: false,
            email_protection: false,
        };
        let c =
            generate_signing_cert_with(&f.ca, "Test PEC", "a@b.example", nb, na, &opts).unwrap();
        let info = CertInfo::parse(&c.cert_der).unwrap();
        let ku: KeyUsage = info.extension(rfc5280::ID_CE_KEY_USAGE).unwrap().unwrap();
        assert!(!ku.digital_signature());
        assert!(info
            .extension::<ExtendedKeyUsage>(rfc5280::ID_CE_EXT_KEY_USAGE)
            .is_none());
    }

    #[test]
    fn tls_cert() {
        let f = fixture();
        let (nb, na) = years(1);
        let hosts = vec![
            "pec.test.example".to_string(),
            "smtp.test.example".to_string(),
        ];
        let tls = generate_tls_cert(&f.ca, &hosts, nb, na).unwrap();
        let info = CertInfo::parse(&tls.cert_der).unwrap();
        assert_eq!(info.subject(), "CN=pec.test.example");
        info.verify_issued_by(&CertInfo::parse(&f.ca.cert_der).unwrap())
            .unwrap();
        let san: SubjectAltName = info
            .extension(rfc5280::ID_CE_SUBJECT_ALT_NAME)
            .unwrap()
            .unwrap();
        assert_eq!(san.0.len(), 2);
        let eku: ExtendedKeyUsage = info
            .extension(rfc5280::ID_CE_EXT_KEY_USAGE)
            .unwrap()
            .unwrap();
        assert_eq!(eku.0, vec![rfc5280::ID_KP_SERVER_AUTH]);
        assert!(ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pem::parse(&tls.key_pkcs8_pem).unwrap().contents(),
            &ring::rand::SystemRandom::new(),
        )
        .is_ok());
        assert!(generate_tls_cert(&f.ca, &[], nb, na).is_err());
    }
}
