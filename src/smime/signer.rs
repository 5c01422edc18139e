//! Detached CMS SignedData signing with an RSA key (ring).
use std::time::Duration;

use chrono::{DateTime, Utc};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{Any, GeneralizedTime, OctetString, SetOfVec, UtcTime};
use der::{Decode, Encode};
use ring::rand::SystemRandom;
use ring::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::time::Time;
use x509_cert::Certificate;

use super::x509::{pem_certificates, CertInfo};
use super::SmimeError;

/// A signing identity: certificate chain (leaf first) and its RSA private key.
pub struct Signer {
    chain: Vec<Vec<u8>>,
    leaf: CertInfo,
    key: RsaKeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("subject", &self.leaf.subject())
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn cms_err(e: der::Error) -> SmimeError {
    SmimeError::Signing(e.to_string())
}

impl Signer {
    /// `chain_pem`: leaf certificate first, then any intermediates/CA to include.
    /// `key_pem`: PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Signer, SmimeError> {
        let chain = pem_certificates(chain_pem)?;
        let key = pem::parse(key_pem).map_err(|e| SmimeError::Pem(e.to_string()))?;
        let key = match key.tag() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(key.contents()),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(key.contents()),
            t => return Err(SmimeError::Key(format!("unsupported PEM block {t:?}"))),
        }
        .map_err(|e| SmimeError::Key(e.to_string()))?;
        Signer::new(chain, key)
    }

    /// From DER certificates (leaf first) and a ring key.
    pub fn new(chain: Vec<Vec<u8>>, key: RsaKeyPair) -> Result<Signer, SmimeError> {
        let leaf_der = chain
            .first()
            .ok_or_else(|| SmimeError::Certificate("empty certificate chain".into()))?;
        let leaf = CertInfo::parse(leaf_der)?;
        for c in &chain[1..] {
            CertInfo::parse(c)?;
        }
        let cert_key = leaf
            .cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        if cert_key != key.public_key().as_ref() {
            return Err(SmimeError::Key(
                "the private key does not match the leaf certificate".into(),
            ));
        }
        Ok(Signer { chain, leaf, key })
    }

    /// The leaf (signing) certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.leaf.der
    }

    /// The whole chain, leaf first, DER.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The first rfc822Name of the leaf's subjectAltName.
    pub fn email(&self) -> Option<String> {
        self.leaf.emails().into_iter().next()
    }

    /// The leaf's subject, RFC 4514 style.
    pub fn subject(&self) -> String {
        self.leaf.subject()
    }

    /// DER `ContentInfo(SignedData)` with a detached SHA-256 / RSA signature over `content`.
    pub fn sign_detached(
        &self,
        content: &[u8],
        signing_time: DateTime<Utc>,
    ) -> Result<Vec<u8>, SmimeError> {
        let sha256 = AlgorithmIdentifierOwned {
            oid: rfc5912::ID_SHA_256,
            parameters: None,
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, content)
            .as_ref()
            .to_vec();
        let attrs = vec![
            attribute(rfc5911::ID_CONTENT_TYPE, &rfc5911::ID_DATA)?,
            attribute(rfc5911::ID_SIGNING_TIME, &cms_time(signing_time)?)?,
            attribute(
                rfc5911::ID_MESSAGE_DIGEST,
                &OctetString::new(digest).map_err(cms_err)?,
            )?,
        ];
        // SetOfVec sorts into DER SET OF order; the signature covers exactly this encoding.
        let signed_attrs = SetOfVec::try_from(attrs).map_err(cms_err)?;
        let to_sign = signed_attrs.to_der().map_err(cms_err)?;
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), &to_sign, &mut sig)
            .map_err(|_| SmimeError::Signing("RSA signing failed".into()))?;

        let tbs = &self.leaf.cert.tbs_certificate;
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: tbs.issuer.clone(),
                serial_number: tbs.serial_number.clone(),
            }),
            digest_alg: sha256.clone(),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: rfc5912::RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
            signature: OctetString::new(sig).map_err(cms_err)?,
            unsigned_attrs: None,
        };
        let mut certs = SetOfVec::new();
        for der in &self.chain {
            let cert = Certificate::from_der(der).map_err(cms_err)?;
            certs
                .insert(CertificateChoices::Certificate(cert))
                .map_err(cms_err)?;
        }
        let signed_data = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![sha256]).map_err(cms_err)?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: rfc5911::ID_DATA,
                econtent: None,
            },
            certificates: Some(CertificateSet(certs)),
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).map_err(cms_err)?),
        };
        ContentInfo {
            content_type: rfc5911::ID_SIGNED_DATA,
            content: Any::encode_from(&signed_data).map_err(cms_err)?,
        }
        .to_der()
        .map_err(cms_err)
    }
}

fn attribute(
    oid: const_oid::ObjectIdentifier,
    value: &impl Encode,
) -> Result<Attribute, SmimeError> {
    let value = Any::from_der(&value.to_der().map_err(cms_err)?).map_err(cms_err)?;
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(cms_err)?,
    })
}

/// UTCTime through 2049, GeneralizedTime after (RFC 5652 §11.3).
fn cms_time(t: DateTime<Utc>) -> Result<Time, SmimeError> {
    let secs = u64::try_from(t.timestamp())
        .map_err(|_| SmimeError::Signing("signing time before 1970".into()))?;
    let d = Duration::from_secs(secs);
    Ok(if (1950..2050).contains(&chrono::Datelike::year(&t)) {
        Time::UtcTime(UtcTime::from_unix_duration(d).map_err(cms_err)?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_unix_duration(d).map_err(cms_err)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smime::testutil::{fixture, years};
    use crate::smime::{generate_signing_cert, verify_detached, VerifyOptions};
    use chrono::TimeZone;
    use cms::signed_data::SignedAttributes;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;

    fn decode(sig: &[u8]) -> SignedData {
        let ci = ContentInfo::from_der(sig).unwrap();
        assert_eq!(ci.content_type, rfc5911::ID_SIGNED_DATA);
        ci.content.decode_as::<SignedData>().unwrap()
    }

    #[test]
    fn detached_signed_data_layout() {
        let f = fixture();
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 5).unwrap();
        let sig = f.signer.sign_detached(b"hello\r\n", t).unwrap();
        let sd = decode(&sig);
        assert_eq!(sd.version, CmsVersion::V1);
        assert_eq!(sd.encap_content_info.econtent_type, rfc5911::ID_DATA);
        assert!(sd.encap_content_info.econtent.is_none());
        assert_eq!(sd.certificates.as_ref().unwrap().0.len(), 2);
        let digests: Vec<_> = sd.digest_algorithms.iter().map(|a| a.oid).collect();
        assert_eq!(digests, vec![rfc5912::ID_SHA_256]);
        let si = sd.signer_infos.0.get(0).unwrap();
        assert_eq!(si.version, CmsVersion::V1);
        assert!(matches!(si.sid, SignerIdentifier::IssuerAndSerialNumber(_)));
        assert_eq!(si.signature_algorithm.oid, rfc5912::RSA_ENCRYPTION);
        assert_eq!(si.signature.as_bytes().len(), 256);
        let attrs: &SignedAttributes = si.signed_attrs.as_ref().unwrap();
        let oids: Vec<_> = attrs.iter().map(|a| a.oid).collect();
        assert_eq!(oids.len(), 3);
        for oid in [
            rfc5911::ID_CONTENT_TYPE,
            rfc5911::ID_SIGNING_TIME,
            rfc5911::ID_MESSAGE_DIGEST,
        ] {
            assert!(oids.contains(&oid));
        }
        // DER: the encoding is canonical, so re-encoding reproduces it
        assert_eq!(ContentInfo::from_der(&sig).unwrap().to_der().unwrap(), sig);
        let v = verify_detached(b"hello\r\n", &sig, &VerifyOptions::default()).unwrap();
        assert_eq!(v.signing_time, Some(t));
        assert!(v.integrity.is_ok());
    }

    #[test]
    fn signing_time_after_2049_uses_generalized_time() {
        let f = fixture();
        let t = Utc.with_ymd_and_hms(2051, 1, 1, 0, 0, 0).unwrap();
        let sig = f.signer.sign_detached(b"x", t).unwrap();
        let v = verify_detached(b"x", &sig, &VerifyOptions::default()).unwrap();
        assert_eq!(v.signing_time, Some(t));
        let before_1970 = Utc.with_ymd_and_hms(1960, 1, 1, 0, 0, 0).unwrap();
        assert!(f.signer.sign_detached(b"x", before_1970).is_err());
    }

    #[test]
    fn accessors() {
        let f = fixture();
        assert_eq!(f.signer.certificate_der(), f.leaf.cert_der.as_slice());
        assert_eq!(f.signer.chain_der().len(), 2);
        assert_eq!(
            f.signer.email().as_deref(),
            Some("posta-certificata@pec.test.example")
        );
        assert!(f
            .signer
            .subject()
            .starts_with("CN=Posta Certificata Test PEC"));
    }

    #[test]
    fn pkcs1_key_is_accepted() {
        let f = fixture();
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&f.leaf.key_pkcs8_pem).unwrap();
        let pkcs1 = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let s = Signer::from_pem(&f.leaf.cert_pem, &pkcs1).unwrap();
        assert_eq!(s.chain_der().len(), 1);
        s.sign_detached(b"x", Utc::now()).unwrap();
    }

    #[test]
    fn bad_inputs_are_errors() {
        let f = fixture();
        // the CA's key does not match the leaf
        assert!(matches!(
            Signer::from_pem(&f.leaf.cert_pem, &f.ca.key_pkcs8_pem),
            Err(SmimeError::Key(_))
        ));
        assert!(Signer::from_pem("", &f.leaf.key_pkcs8_pem).is_err());
        assert!(Signer::from_pem(&f.leaf.cert_pem, "garbage").is_err());
        assert!(Signer::from_pem(&f.leaf.cert_pem, &f.leaf.cert_pem).is_err());
        let bad_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(Signer::from_pem(bad_cert, &f.leaf.key_pkcs8_pem).is_err());
        // an EC key is not an RSA key
        let (nb, na) = years(1);
        let tls = crate::smime::generate_tls_cert(&f.ca, &["h.example".into()], nb, na).unwrap();
        assert!(Signer::from_pem(&tls.cert_pem, &tls.key_pkcs8_pem).is_err());
        // a different signing certificate with the fixture key
        let other = generate_signing_cert(&f.ca, "Other", "o@o.example", nb, na).unwrap();
        assert!(Signer::from_pem(&other.cert_pem, &f.leaf.key_pkcs8_pem).is_err());
    }
}
