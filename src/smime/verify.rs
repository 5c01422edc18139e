//! Verification of detached CMS signatures and of whole `multipart/signed` messages.
use chrono::{DateTime, SecondsFormat, Utc};
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use const_oid::db::{rfc5280, rfc5911};
use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, OctetString};
use der::{Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged};
use serde::{Serialize, Serializer};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage};
use x509_cert::time::Time;

use super::chain::{check_chain, ChainStatus};
use super::x509::{to_chrono, verify_signature, CertInfo, DigestAlg, SigFailure, SigScheme};
use super::{ber, split_signed, IntegrityError, SmimeError};

/// What to trust and when.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Trust anchors (DER certificates). They need not be self-signed roots.
    pub anchors: Vec<Vec<u8>>,
    /// Time at which certificates must be valid; default: the signing time, else now.
    pub at: Option<DateTime<Utc>>,
}

/// The signer's certificate, summarized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerSummary {
    /// RFC 4514 style, most specific first, e.g. `CN=Posta Certificata X, O=X, C=IT`.
    pub subject: String,
    pub issuer: String,
    /// Lowercase hex, no leading zero byte.
    pub serial_hex: String,
    /// subjectAltName rfc822Name entries.
    pub emails: Vec<String>,
    /// Lowercase hex SHA-1 of the DER certificate (IGPEC providerCertificateHash).
    pub sha1_hex: String,
    #[serde(serialize_with = "ser_time")]
    pub not_before: DateTime<Utc>,
    #[serde(serialize_with = "ser_time")]
    pub not_after: DateTime<Utc>,
    #[serde(serialize_with = "ser_b64")]
    pub der: Vec<u8>,
}

/// Result of a verification. Each aspect is reported separately.
///
/// Serializes (JSON) with the computed `valid` and `problems` too; `integrity` and
/// `key_usage` as `{"ok": bool, "error"?: text, "kind"?: tag}`.
#[derive(Debug, Clone)]
pub struct Verification {
    pub signer: Option<SignerSummary>,
    pub signing_time: Option<DateTime<Utc>>,
    /// The SignerInfo's digestAlgorithm.
    pub digest: DigestAlg,
    pub integrity: Result<(), IntegrityError>,
    pub chain: ChainStatus,
    pub key_usage: Result<(), String>,
    /// The time certificate validity was checked at (None if the chain was not checked).
    pub checked_at: Option<DateTime<Utc>>,
    /// All certificates carried by the signature (DER), in their original order.
    pub certificates: Vec<Vec<u8>>,
}

impl Serialize for Verification {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        #[derive(Serialize)]
        struct Check<'a> {
            ok: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            kind: Option<&'a IntegrityError>,
        }
        #[derive(Serialize)]
        struct Chain<'a> {
            #[serde(flatten)]
            status: &'a ChainStatus,
            message: String,
        }
        struct Time(Option<DateTime<Utc>>);
        impl Serialize for Time {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                ser_opt_time(&self.0, s)
            }
        }
        struct Certs<'a>(&'a [Vec<u8>]);
        impl Serialize for Certs<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                ser_b64_vec(self.0, s)
            }
        }
        let integrity = Check {
            ok: self.integrity.is_ok(),
            error: self.integrity.as_ref().err().map(|e| e.to_string()),
            kind: self.integrity.as_ref().err(),
        };
        let key_usage = Check {
            ok: self.key_usage.is_ok(),
            error: self.key_usage.as_ref().err().cloned(),
            kind: None,
        };
        let mut st = s.serialize_struct("Verification", 10)?;
        st.serialize_field("valid", &self.is_valid())?;
        st.serialize_field("problems", &self.problems())?;
        st.serialize_field("signer", &self.signer)?;
        st.serialize_field("signing_time", &Time(self.signing_time))?;
        st.serialize_field("checked_at", &Time(self.checked_at))?;
        st.serialize_field("digest", &self.digest)?;
        st.serialize_field("integrity", &integrity)?;
        st.serialize_field(
            "chain",
            &Chain {
                status: &self.chain,
                message: self.chain.to_string(),
            },
        )?;
        st.serialize_field("key_usage", &key_usage)?;
        st.serialize_field("certificates", &Certs(&self.certificates))?;
        st.end()
    }
}

impl Verification {
    /// Integrity holds, the chain reaches an anchor and the signer may sign mail.
    pub fn is_valid(&self) -> bool {
        self.integrity.is_ok() && self.chain.is_valid() && self.key_usage.is_ok()
    }

    /// The time certificate validity was checked at, if the chain was checked.
    pub fn checked_at(&self) -> Option<DateTime<Utc>> {
        self.checked_at
    }

    /// One English line per problem; empty when [`Self::is_valid`].
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = &self.integrity {
            out.push(format!("integrity: {e}"));
        }
        if !self.chain.is_valid() {
            out.push(format!("certificate chain: {}", self.chain));
        }
        if let (Some(_), Err(e)) = (&self.signer, &self.key_usage) {
            out.push(format!("key usage: {e}"));
        }
        out
    }
}

/// Verifies a detached signature over `content` (already in canonical form).
///
/// Err only when `signature_der` is not a parsable CMS SignedData; every other
/// problem is reported in the returned [`Verification`].
pub fn verify_detached(
    content: &[u8],
    signature_der: &[u8],
    opts: &VerifyOptions,
) -> Result<Verification, SmimeError> {
    let cms = ParsedCms::parse(signature_der)?;
    Ok(cms.evaluate(content, opts))
}

/// [`split_signed`] + [`verify_detached`]. If the CRLF-canonical entity does not match,
/// the entity bytes as found are tried too (some signers hash what they wrote).
pub fn verify_message(raw: &[u8], opts: &VerifyOptions) -> Result<Verification, SmimeError> {
    let parts = split_signed(raw)?;
    let cms = ParsedCms::parse(&parts.signature_der)?;
    let first = cms.evaluate(&parts.content, opts);
    let mismatch = matches!(
        first.integrity,
        Err(IntegrityError::DigestMismatch | IntegrityError::BadSignature)
    );
    if mismatch && parts.raw_content != &parts.content[..] {
        let second = cms.evaluate(parts.raw_content, opts);
        if second.integrity.is_ok() {
            return Ok(second);
        }
    }
    Ok(first)
}

/// Verifies a CMS SignedData that carries its content (`.p7m`, "attached"), DER or BER,
/// and returns that content with the verification.
///
/// Err when the blob is not a parsable SignedData, or carries no content (detached) or
/// content of another type than id-data; every other problem is in the [`Verification`].
pub fn verify_attached(
    p7m: &[u8],
    opts: &VerifyOptions,
) -> Result<(Vec<u8>, Verification), SmimeError> {
    let (content, detached) = detach(p7m)?;
    let cms = ParsedCms::parse(&detached)?;
    let v = cms.evaluate(&content, opts);
    Ok((content, v))
}

/// Splits an attached SignedData into its content and the same SignedData without it,
/// so the detached path can check it. Streamed (BER) signers cut the content into a
/// constructed OCTET STRING, which the `der` crate cannot decode: hence the raw walk.
fn detach(p7m: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SmimeError> {
    let bad = |e: der::Error| SmimeError::Cms(e.to_string());
    let der = ber::normalize(p7m)?;
    let ci = Vec::<AnyRef<'_>>::from_der(&der).map_err(bad)?;
    let (Some(ct), Some(body), 2) = (ci.first(), ci.get(1), ci.len()) else {
        return Err(SmimeError::Cms("malformed ContentInfo".into()));
    };
    if ct.decode_as::<ObjectIdentifier>().map_err(bad)? != rfc5911::ID_SIGNED_DATA {
        return Err(SmimeError::Cms("content type is not signed-data".into()));
    }
    let mut fields = Vec::<AnyRef<'_>>::from_der(body.value()).map_err(bad)?;
    let encap = fields
        .get(2)
        .filter(|f| f.tag() == Tag::Sequence)
        .ok_or_else(|| SmimeError::Cms("missing encapContentInfo".into()))?;
    let parts = children(encap.value()).map_err(bad)?;
    let econtent_type = parts
        .first()
        .ok_or_else(|| SmimeError::Cms("empty encapContentInfo".into()))?
        .decode_as::<ObjectIdentifier>()
        .map_err(bad)?;
    if econtent_type != rfc5911::ID_DATA {
        return Err(SmimeError::Cms(format!(
            "encapsulated content type {econtent_type} is not id-data"
        )));
    }
    let econtent = parts
        .get(1)
        .filter(|p| p.tag() == CTX0_CONSTRUCTED)
        .ok_or_else(|| SmimeError::Cms("no encapsulated content (detached signature)".into()))?;
    let mut content = Vec::new();
    let mut pos = 0;
    octets(econtent.value(), &mut pos, &mut content, 0)?;
    let type_only = parts[0].to_der().map_err(bad)?;
    let new_encap = AnyRef::new(Tag::Sequence, &type_only).map_err(bad)?;
    fields[2] = new_encap;
    let mut sd = Vec::new();
    for f in &fields {
        sd.extend(f.to_der().map_err(bad)?);
    }
    let sd = AnyRef::new(Tag::Sequence, &sd)
        .and_then(|s| s.to_der())
        .map_err(bad)?;
    let wrapped = AnyRef::new(CTX0_CONSTRUCTED, &sd)
        .and_then(|w| w.to_der())
        .map_err(bad)?;
    let mut ci = ct.to_der().map_err(bad)?;
    ci.extend(wrapped);
    let ci = AnyRef::new(Tag::Sequence, &ci)
        .and_then(|c| c.to_der())
        .map_err(bad)?;
    Ok((content, ci))
}

/// Appends the bytes of the (primitive or constructed) OCTET STRING at `pos` in `data`,
/// which has definite lengths (after [`ber::normalize`]).
fn octets(data: &[u8], pos: &mut usize, out: &mut Vec<u8>, depth: usize) -> Result<(), SmimeError> {
    let bad = |why: &str| SmimeError::Cms(format!("encapsulated content: {why}"));
    if depth > 8 {
        return Err(bad("nesting too deep"));
    }
    let tag = *data.get(*pos).ok_or_else(|| bad("truncated"))?;
    let l0 = *data.get(*pos + 1).ok_or_else(|| bad("truncated"))?;
    *pos += 2;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n > 4 {
            return Err(bad("length too large"));
        }
        let bytes = data.get(*pos..*pos + n).ok_or_else(|| bad("truncated"))?;
        *pos += n;
        bytes.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b))
    };
    let end = pos.checked_add(len).ok_or_else(|| bad("length overflow"))?;
    let value = data.get(*pos..end).ok_or_else(|| bad("truncated"))?;
    *pos = end;
    match tag {
        0x04 => out.extend_from_slice(value),
        0x24 => {
            let mut inner = 0;
            while inner < value.len() {
                octets(value, &mut inner, out, depth + 1)?;
            }
        }
        _ => return Err(bad("not an OCTET STRING")),
    }
    Ok(())
}

struct ParsedSigner {
    info: SignerInfo,
    /// The signed attributes exactly as received, re-tagged as SET OF (what was signed).
    raw_attrs: Option<Vec<u8>>,
}

struct ParsedCms {
    certs: Vec<CertInfo>,
    cert_ders: Vec<Vec<u8>>,
    signers: Vec<ParsedSigner>,
}

const CTX0_CONSTRUCTED: Tag = Tag::ContextSpecific {
    constructed: true,
    number: TagNumber::N0,
};

fn children(value: &[u8]) -> der::Result<Vec<AnyRef<'_>>> {
    let mut reader = SliceReader::new(value)?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(AnyRef::decode(&mut reader)?);
    }
    Ok(out)
}

impl ParsedCms {
    fn parse(blob: &[u8]) -> Result<ParsedCms, SmimeError> {
        let bad = |e: der::Error| SmimeError::Cms(e.to_string());
        let der = ber::normalize(blob)?;
        let ci = ContentInfo::from_der(&der).map_err(bad)?;
        if ci.content_type != rfc5911::ID_SIGNED_DATA {
            return Err(SmimeError::Cms(format!(
                "content type {} is not signed-data",
                ci.content_type
            )));
        }
        let sd_der = ci.content.to_der().map_err(bad)?;
        // Full decode validates the structure; the raw walk below keeps original bytes
        // (decoded SETs are re-sorted, which would break signatures).
        SignedData::from_der(&sd_der).map_err(bad)?;
        let fields = Vec::<AnyRef<'_>>::from_der(&sd_der).map_err(bad)?;

        let mut cert_ders = Vec::new();
        if let Some(set) = fields.iter().find(|f| f.tag() == CTX0_CONSTRUCTED) {
            for c in children(set.value()).map_err(bad)? {
                if c.tag() == Tag::Sequence {
                    cert_ders.push(c.to_der().map_err(bad)?);
                }
            }
        }
        let certs = cert_ders
            .iter()
            .filter_map(|d| CertInfo::parse(d).ok())
            .collect();

        let signer_set = fields
            .last()
            .filter(|f| f.tag() == Tag::Set)
            .ok_or_else(|| SmimeError::Cms("missing signerInfos".into()))?;
        let mut signers = Vec::new();
        for si in children(signer_set.value()).map_err(bad)? {
            let si_der = si.to_der().map_err(bad)?;
            let info = SignerInfo::from_der(&si_der).map_err(bad)?;
            let raw_attrs = match Vec::<AnyRef<'_>>::from_der(&si_der)
                .map_err(bad)?
                .iter()
                .find(|f| f.tag() == CTX0_CONSTRUCTED)
            {
                Some(a) => Some(
                    AnyRef::new(Tag::Set, a.value())
                        .and_then(|s| s.to_der())
                        .map_err(bad)?,
                ),
                None => None,
            };
            signers.push(ParsedSigner { info, raw_attrs });
        }
        Ok(ParsedCms {
            certs,
            cert_ders,
            signers,
        })
    }

    fn find_signer(&self, sid: &SignerIdentifier) -> Option<&CertInfo> {
        self.certs.iter().find(|c| match sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                c.cert.tbs_certificate.issuer == isn.issuer
                    && c.cert.tbs_certificate.serial_number == isn.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                c.subject_key_id().as_deref() == Some(ski.0.as_bytes())
            }
        })
    }

    /// PEC messages carry one signer; only the first SignerInfo is checked.
    fn evaluate(&self, content: &[u8], opts: &VerifyOptions) -> Verification {
        let mut v = Verification {
            signer: None,
            signing_time: None,
            digest: DigestAlg::Unknown,
            integrity: Err(IntegrityError::NoSignerInfo),
            chain: ChainStatus::NoSignerCertificate,
            key_usage: Err("not checked: no signer certificate".into()),
            checked_at: None,
            certificates: self.cert_ders.clone(),
        };
        let Some(signer) = self.signers.first() else {
            return v;
        };
        let si = &signer.info;
        v.digest = DigestAlg::from_oid(&si.digest_alg.oid).unwrap_or(DigestAlg::Unknown);
        v.signing_time = si
            .signed_attrs
            .as_ref()
            .and_then(|a| attr_value(a, rfc5911::ID_SIGNING_TIME))
            .and_then(|any| any.to_der().ok())
            .and_then(|der| Time::from_der(&der).ok())
            .map(|t| to_chrono(&t));
        let cert = self.find_signer(&si.sid);
        v.integrity = check_integrity(signer, cert, content);
        let Some(cert) = cert else {
            return v;
        };
        v.signer = Some(summary(cert));
        v.key_usage = check_key_usage(cert);
        let at = opts.at.or(v.signing_time).unwrap_or_else(Utc::now);
        let anchors: Vec<CertInfo> = opts
            .anchors
            .iter()
            .filter_map(|d| CertInfo::parse(d).ok())
            .collect();
        v.chain = if opts.anchors.is_empty() {
            ChainStatus::NoAnchors
        } else if anchors.is_empty() {
            ChainStatus::Untrusted {
                reason: "none of the configured anchors is a parsable certificate".into(),
            }
        } else {
            v.checked_at = Some(at);
            check_chain(cert, &self.certs, &anchors, at)
        };
        v
    }
}

fn attr_value(attrs: &x509_cert::attr::Attributes, oid: ObjectIdentifier) -> Option<&der::Any> {
    attrs
        .iter()
        .find(|a| a.oid == oid)
        .and_then(|a| a.values.iter().next())
}

fn check_integrity(
    signer: &ParsedSigner,
    cert: Option<&CertInfo>,
    content: &[u8],
) -> Result<(), IntegrityError> {
    let si = &signer.info;
    let digest = DigestAlg::from_oid(&si.digest_alg.oid)
        .ok_or_else(|| IntegrityError::UnsupportedDigest(si.digest_alg.oid.to_string()))?;
    let cert = cert.ok_or(IntegrityError::SignerCertificateNotFound)?;
    let malformed = |what: &str| IntegrityError::MalformedAttributes(what.to_string());
    let signed: &[u8] = match (&si.signed_attrs, &signer.raw_attrs) {
        (Some(attrs), Some(raw)) => {
            let md = attr_value(attrs, rfc5911::ID_MESSAGE_DIGEST)
                .ok_or(IntegrityError::MissingMessageDigest)?;
            let md = md
                .decode_as::<OctetString>()
                .map_err(|_| malformed("messageDigest is not an OCTET STRING"))?;
            if Some(md.as_bytes()) != digest.digest(content).as_deref() {
                return Err(IntegrityError::DigestMismatch);
            }
            let ct = attr_value(attrs, rfc5911::ID_CONTENT_TYPE)
                .ok_or_else(|| malformed("contentType is missing"))?
                .decode_as::<ObjectIdentifier>()
                .map_err(|_| malformed("contentType is not an OID"))?;
            if ct != rfc5911::ID_DATA {
                return Err(IntegrityError::WrongContentType(ct.to_string()));
            }
            raw
        }
        _ => content,
    };
    let sig_oid = si.signature_algorithm.oid;
    let scheme = SigScheme::from_oid(&sig_oid, Some(digest))
        .ok_or_else(|| IntegrityError::UnsupportedSignatureAlgorithm(sig_oid.to_string()))?;
    verify_signature(
        &cert.cert.tbs_certificate.subject_public_key_info,
        scheme,
        signed,
        si.signature.as_bytes(),
    )
    .map_err(|e| match e {
        SigFailure::Invalid => IntegrityError::BadSignature,
        SigFailure::Unsupported(why) => IntegrityError::UnsupportedSignatureAlgorithm(why),
    })
}

fn check_key_usage(cert: &CertInfo) -> Result<(), String> {
    match cert.extension::<KeyUsage>(rfc5280::ID_CE_KEY_USAGE) {
        Some(Err(e)) => return Err(e),
        Some(Ok(ku)) if !(ku.digital_signature() || ku.non_repudiation()) => {
            return Err("KeyUsage allows neither digitalSignature nor nonRepudiation".into())
        }
        _ => {}
    }
    match cert.extension::<ExtendedKeyUsage>(rfc5280::ID_CE_EXT_KEY_USAGE) {
        Some(Err(e)) => Err(e),
        Some(Ok(eku))
            if !eku.0.iter().any(|o| {
                *o == rfc5280::ID_KP_EMAIL_PROTECTION || *o == rfc5280::ANY_EXTENDED_KEY_USAGE
            }) =>
        {
            Err("ExtendedKeyUsage does not include emailProtection".into())
        }
        _ => Ok(()),
    }
}

fn summary(cert: &CertInfo) -> SignerSummary {
    SignerSummary {
        subject: cert.subject(),
        issuer: cert.issuer(),
        serial_hex: cert.serial_hex(),
        emails: cert.emails(),
        sha1_hex: cert.sha1_hex(),
        not_before: cert.not_before(),
        not_after: cert.not_after(),
        der: cert.der.clone(),
    }
}

pub(crate) fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}

fn ser_b64<S: Serializer>(d: &[u8], s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine;
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(d))
}

fn ser_b64_vec<S: Serializer>(d: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine;
    s.collect_seq(
        d.iter()
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smime::testutil::{fixture, signer_for, years, ENTITY};
    use crate::smime::{generate_ca, generate_signing_cert, generate_signing_cert_with};
    use crate::smime::{Signer, SigningCertOptions};
    use chrono::Duration;
    use cms::signed_data::SignerInfos;
    use der::asn1::SetOfVec;
    use x509_cert::ext::pkix::SubjectKeyIdentifier as Ski;

    fn opts(anchor: &[u8]) -> VerifyOptions {
        VerifyOptions {
            anchors: vec![anchor.to_vec()],
            at: None,
        }
    }

    fn sign(signer: &Signer, content: &[u8]) -> Vec<u8> {
        signer.sign_detached(content, Utc::now()).unwrap()
    }

    #[test]
    fn round_trip() {
        let f = fixture();
        let t = Utc::now() - Duration::hours(1);
        let sig = f.signer.sign_detached(ENTITY, t).unwrap();
        let v = verify_detached(ENTITY, &sig, &opts(&f.ca.cert_der)).unwrap();
        assert!(v.is_valid(), "{:?}", v.problems());
        assert!(v.problems().is_empty());
        assert_eq!(v.digest, DigestAlg::Sha256);
        assert_eq!(v.signing_time, Some(t.with_nanosecond0()));
        assert_eq!(v.checked_at(), v.signing_time);
        assert_eq!(
            v.chain,
            ChainStatus::Valid {
                anchor: "CN=Test PEC CA, O=Test PEC, C=IT".into()
            }
        );
        assert_eq!(v.certificates.len(), 2);
        let s = v.signer.as_ref().unwrap();
        assert_eq!(s.subject, "CN=Posta Certificata Test PEC, O=Test PEC, C=IT");
        assert_eq!(s.issuer, "CN=Test PEC CA, O=Test PEC, C=IT");
        assert_eq!(s.emails, vec!["posta-certificata@pec.test.example"]);
        assert_eq!(s.der, f.leaf.cert_der);
        assert_eq!(s.sha1_hex.len(), 40);
        assert_eq!(s.sha1_hex, s.sha1_hex.to_lowercase());
        assert!(!s.serial_hex.is_empty());
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["valid"], true);
        assert_eq!(json["digest"], "sha256");
        assert_eq!(json["integrity"]["ok"], true);
        assert_eq!(json["chain"]["status"], "valid");
        assert!(json["signer"]["not_after"].as_str().unwrap().ends_with('Z'));
    }

    trait Trunc {
        fn with_nanosecond0(self) -> Self;
    }
    impl Trunc for DateTime<Utc> {
        fn with_nanosecond0(self) -> Self {
            DateTime::from_timestamp(self.timestamp(), 0).unwrap()
        }
    }

    #[test]
    fn tampered_content_fails_integrity() {
        let f = fixture();
        let sig = sign(&f.signer, ENTITY);
        let mut changed = ENTITY.to_vec();
        changed[40] ^= 0x20;
        let v = verify_detached(&changed, &sig, &opts(&f.ca.cert_der)).unwrap();
        assert_eq!(v.integrity, Err(IntegrityError::DigestMismatch));
        assert!(v.chain.is_valid());
        assert!(!v.is_valid());
        assert_eq!(v.problems().len(), 1);
        assert!(v.problems()[0].contains("altered"));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["integrity"]["kind"]["kind"], "digest_mismatch");
    }

    #[test]
    fn tampered_signature_fails() {
        let f = fixture();
        let mut sig = sign(&f.signer, ENTITY);
        // DER: the signature value is the last field of the last SignerInfo
        let last = sig.len() - 1;
        sig[last] ^= 1;
        let v = verify_detached(ENTITY, &sig, &opts(&f.ca.cert_der)).unwrap();
        assert_eq!(v.integrity, Err(IntegrityError::BadSignature));
    }

    #[test]
    fn wrong_anchor_is_untrusted() {
        let f = fixture();
        let (nb, na) = years(1);
        let other = generate_ca("Another PEC", nb, na).unwrap();
        let sig = sign(&f.signer, ENTITY);
        let v = verify_detached(ENTITY, &sig, &opts(&other.cert_der)).unwrap();
        assert!(v.integrity.is_ok());
        assert!(
            matches!(v.chain, ChainStatus::Untrusted { .. }),
            "{}",
            v.chain
        );
        assert!(!v.is_valid());
        assert!(v.problems()[0].starts_with("certificate chain: untrusted"));
        // same name, different key: the signature on the leaf gives it away
        let impostor = generate_ca("Test PEC", nb, na).unwrap();
        let v = verify_detached(ENTITY, &sig, &opts(&impostor.cert_der)).unwrap();
        assert!(
            matches!(v.chain, ChainStatus::BadCertSignature { .. }),
            "{}",
            v.chain
        );
    }

    #[test]
    fn anchors_edge_cases() {
        let f = fixture();
        let sig = sign(&f.signer, ENTITY);
        let v = verify_detached(ENTITY, &sig, &VerifyOptions::default()).unwrap();
        assert_eq!(v.chain, ChainStatus::NoAnchors);
        assert!(!v.is_valid());
        assert_eq!(v.checked_at(), None);
        let v = verify_detached(ENTITY, &sig, &opts(b"not a certificate")).unwrap();
        assert!(matches!(v.chain, ChainStatus::Untrusted { .. }));
        // the leaf itself as the anchor
        let v = verify_detached(ENTITY, &sig, &opts(&f.leaf.cert_der)).unwrap();
        assert!(v.is_valid(), "{:?}", v.problems());
    }

    #[test]
    fn validity_is_checked_at_the_requested_time() {
        let f = fixture();
        let sig = sign(&f.signer, ENTITY);
        for at in [
            Utc::now() + Duration::days(3650),
            Utc::now() - Duration::days(30),
        ] {
            let o = VerifyOptions {
                anchors: vec![f.ca.cert_der.clone()],
                at: Some(at),
            };
            let v = verify_detached(ENTITY, &sig, &o).unwrap();
            assert_eq!(v.checked_at(), Some(at));
            match &v.chain {
                ChainStatus::Expired {
                    subject, at: when, ..
                } => {
                    assert!(subject.contains("Posta Certificata"));
                    assert_eq!(*when, at);
                }
                other => panic!("{other}"),
            }
            assert!(v.integrity.is_ok());
        }
    }

    #[test]
    fn expired_certificate_at_signing_time() {
        let f = fixture();
        let now = Utc::now();
        let leaf = generate_signing_cert(
            &f.ca,
            "Test PEC",
            "old@pec.test.example",
            now - Duration::days(400),
            now - Duration::days(35),
        )
        .unwrap();
        let signer = signer_for(&leaf, &f.ca);
        let v = verify_detached(ENTITY, &sign(&signer, ENTITY), &opts(&f.ca.cert_der)).unwrap();
        assert!(
            matches!(v.chain, ChainStatus::Expired { .. }),
            "{}",
            v.chain
        );
        assert!(v.problems()[0].contains("is not valid at"));
        // signed when the leaf was still valid: now the anchor (issued yesterday) is not
        let sig = signer
            .sign_detached(ENTITY, now - Duration::days(100))
            .unwrap();
        match verify_detached(ENTITY, &sig, &opts(&f.ca.cert_der))
            .unwrap()
            .chain
        {
            ChainStatus::Expired { subject, .. } => {
                assert_eq!(subject, "CN=Test PEC CA, O=Test PEC, C=IT")
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn key_usage_without_digital_signature() {
        let f = fixture();
        let (nb, na) = years(1);
        let leaf = generate_signing_cert_with(
            &f.ca,
            "Test PEC",
            "x@pec.test.example",
            nb,
            na,
            &SigningCertOptions {
                digital_signature: false,
                ..Default::default()
            },
        )
        .unwrap();
        let signer = signer_for(&leaf, &f.ca);
        let v = verify_detached(ENTITY, &sign(&signer, ENTITY), &opts(&f.ca.cert_der)).unwrap();
        assert!(v.integrity.is_ok());
        assert!(v.chain.is_valid());
        assert!(v.key_usage.is_err());
        assert!(!v.is_valid());
        assert_eq!(v.problems().len(), 1);
        assert!(v.problems()[0].starts_with("key usage"));
    }

    #[test]
    fn key_usage_rules() {
        let f = fixture();
        let tls = crate::smime::generate_tls_cert(
            &f.ca,
            &["h.example".into()],
            Utc::now(),
            Utc::now() + Duration::days(1),
        )
        .unwrap();
        // serverAuth only: not for mail
        let tls = CertInfo::parse(&tls.cert_der).unwrap();
        assert!(check_key_usage(&tls)
            .unwrap_err()
            .contains("emailProtection"));
        let ca = CertInfo::parse(&f.ca.cert_der).unwrap();
        assert!(check_key_usage(&ca).is_err());
        let leaf = CertInfo::parse(&f.leaf.cert_der).unwrap();
        assert!(check_key_usage(&leaf).is_ok());
    }

    fn resign<F: FnOnce(&mut SignerInfo)>(sig: &[u8], edit: F) -> Vec<u8> {
        let ci = ContentInfo::from_der(sig).unwrap();
        let mut sd: SignedData = ci.content.decode_as().unwrap();
        let mut si = sd.signer_infos.0.get(0).unwrap().clone();
        edit(&mut si);
        sd.signer_infos = SignerInfos(SetOfVec::try_from(vec![si]).unwrap());
        ContentInfo {
            content_type: rfc5911::ID_SIGNED_DATA,
            content: der::Any::encode_from(&sd).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn without_signed_attributes_the_signature_covers_the_content() {
        let f = fixture();
        let key = ring::signature::RsaKeyPair::from_pkcs8(
            pem::parse(&f.leaf.key_pkcs8_pem).unwrap().contents(),
        )
        .unwrap();
        let mut raw_sig = vec![0u8; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            ENTITY,
            &mut raw_sig,
        )
        .unwrap();
        let sig = resign(&sign(&f.signer, ENTITY), |si| {
            si.signed_attrs = None;
            si.signature_algorithm.oid = const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION;
            si.signature = OctetString::new(raw_sig).unwrap();
        });
        let v = verify_detached(ENTITY, &sig, &opts(&f.ca.cert_der)).unwrap();
        assert!(v.is_valid(), "{:?}", v.problems());
        assert_eq!(v.signing_time, None);
        let v = verify_detached(b"other", &sig, &opts(&f.ca.cert_der)).unwrap();
        assert_eq!(v.integrity, Err(IntegrityError::BadSignature));
    }

    #[test]
    fn signer_found_by_subject_key_identifier() {
        let f = fixture();
        let ski = CertInfo::parse(&f.leaf.cert_der)
            .unwrap()
            .subject_key_id()
            .unwrap();
        let sig = resign(&sign(&f.signer, ENTITY), |si| {
            si.version = cms::content_info::CmsVersion::V3;
            si.sid =
                SignerIdentifier::SubjectKeyIdentifier(Ski(OctetString::new(ski.clone()).unwrap()));
        });
        let v = verify_detached(ENTITY, &sig, &opts(&f.ca.cert_der)).unwrap();
        assert!(v.is_valid(), "{:?}", v.problems());
        // an unknown identifier: reported, not an error
        let sig = resign(&sig, |si| {
            si.sid = SignerIdentifier::SubjectKeyIdentifier(Ski(
                OctetString::new(vec![1, 2, 3]).unwrap()
            ));
        });
        let v = verify_detached(ENTITY, &sig, &opts(&f.ca.cert_der)).unwrap();
        assert_eq!(v.integrity, Err(IntegrityError::SignerCertificateNotFound));
        assert_eq!(v.chain, ChainStatus::NoSignerCertificate);
        assert!(v.signer.is_none());
        assert_eq!(v.problems().len(), 2);
    }

    #[test]
    fn unknown_algorithms_are_reported() {
        let f = fixture();
        let sig = resign(&sign(&f.signer, ENTITY), |si| {
            si.digest_alg.oid = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
        });
        let v = verify_detached(ENTITY, &sig, &opts(&f.ca.cert_der)).unwrap();
        assert_eq!(v.digest, DigestAlg::Unknown);
        assert!(matches!(
            v.integrity,
            Err(IntegrityError::UnsupportedDigest(_))
        ));
        let sig = resign(&sign(&f.signer, ENTITY), |si| {
            si.signature_algorithm.oid = const_oid::db::rfc5912::ID_RSASSA_PSS;
        });
        let v = verify_detached(ENTITY, &sig, &opts(&f.ca.cert_der)).unwrap();
        assert!(matches!(
            v.integrity,
            Err(IntegrityError::UnsupportedSignatureAlgorithm(_))
        ));
    }

    #[test]
    fn unparsable_signatures_are_errors() {
        let f = fixture();
        let sig = sign(&f.signer, ENTITY);
        for cut in 0..sig.len() {
            assert!(
                verify_detached(ENTITY, &sig[..cut], &VerifyOptions::default()).is_err(),
                "prefix {cut}"
            );
        }
        for i in 0..sig.len() {
            let mut s = sig.clone();
            s[i] ^= 0xff;
            let _ = verify_detached(ENTITY, &s, &opts(&f.ca.cert_der));
        }
        let data = ContentInfo {
            content_type: rfc5911::ID_DATA,
            content: der::Any::encode_from(&OctetString::new(vec![1]).unwrap()).unwrap(),
        }
        .to_der()
        .unwrap();
        assert!(matches!(
            verify_detached(ENTITY, &data, &VerifyOptions::default()),
            Err(SmimeError::Cms(_))
        ));
        assert!(verify_detached(ENTITY, b"", &VerifyOptions::default()).is_err());
        assert!(verify_detached(ENTITY, b"hello world", &VerifyOptions::default()).is_err());
    }

    /// The fields of a detached SignedData, to rebuild it with content.
    fn signed_data_fields(sig: &[u8]) -> Vec<Vec<u8>> {
        let ci = Vec::<AnyRef<'_>>::from_der(sig).unwrap();
        Vec::<AnyRef<'_>>::from_der(ci[1].value())
            .unwrap()
            .iter()
            .map(|f| f.to_der().unwrap())
            .collect()
    }

    /// BER, indefinite lengths throughout, `econtent` as the encapsulated content TLV.
    fn attached(sig: &[u8], econtent: &[u8]) -> Vec<u8> {
        let fields = signed_data_fields(sig);
        let mut out = vec![0x30, 0x80];
        out.extend(rfc5911::ID_SIGNED_DATA.to_der().unwrap());
        out.extend([0xa0, 0x80, 0x30, 0x80]);
        out.extend(&fields[0]);
        out.extend(&fields[1]);
        out.extend([0x30, 0x80]);
        out.extend(rfc5911::ID_DATA.to_der().unwrap());
        out.extend([0xa0, 0x80]);
        out.extend(econtent);
        out.extend([0, 0, 0, 0]);
        for f in &fields[3..] {
            out.extend(f);
        }
        out.extend([0, 0, 0, 0, 0, 0]);
        out
    }

    #[test]
    fn attached_content_is_returned_and_verified() {
        let f = fixture();
        let sig = sign(&f.signer, ENTITY);
        let primitive = OctetString::new(ENTITY).unwrap().to_der().unwrap();
        // streamed form: a constructed OCTET STRING in two segments
        let (a, b) = ENTITY.split_at(50);
        let mut chunked = vec![0x24, 0x80];
        chunked.extend(OctetString::new(a).unwrap().to_der().unwrap());
        chunked.extend(OctetString::new(b).unwrap().to_der().unwrap());
        chunked.extend([0, 0]);
        for econtent in [primitive.clone(), chunked] {
            let p7m = attached(&sig, &econtent);
            let (content, v) = verify_attached(&p7m, &opts(&f.ca.cert_der)).unwrap();
            assert_eq!(content, ENTITY);
            assert!(v.is_valid(), "{:?}", v.problems());
        }
        let mut changed = ENTITY.to_vec();
        changed[40] ^= 0x20;
        let p7m = attached(&sig, &OctetString::new(changed).unwrap().to_der().unwrap());
        let (_, v) = verify_attached(&p7m, &opts(&f.ca.cert_der)).unwrap();
        assert_eq!(v.integrity, Err(IntegrityError::DigestMismatch));
        // detached, truncated, or not signed-data: errors
        assert!(verify_attached(&sig, &opts(&f.ca.cert_der)).is_err());
        let p7m = attached(&sig, &primitive);
        for cut in (0..p7m.len()).step_by(7) {
            assert!(verify_attached(&p7m[..cut], &VerifyOptions::default()).is_err());
        }
        let not_octets = attached(&sig, &[0x02, 0x01, 0x05]);
        assert!(verify_attached(&not_octets, &VerifyOptions::default()).is_err());
    }

    #[test]
    fn ber_indefinite_signature_is_accepted() {
        // Re-wrap the outer ContentInfo with indefinite length, as Aruba 2026 does.
        let f = fixture();
        let sig = sign(&f.signer, ENTITY);
        let ci = Vec::<AnyRef<'_>>::from_der(&sig).unwrap();
        let mut ber = vec![0x30, 0x80];
        for part in ci {
            ber.extend(part.to_der().unwrap());
        }
        ber.extend([0, 0]);
        let v = verify_detached(ENTITY, &ber, &opts(&f.ca.cert_der)).unwrap();
        assert!(v.is_valid(), "{:?}", v.problems());
    }
}
