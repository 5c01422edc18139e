//! Certification path from the signer to a configured trust anchor.
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::verify::ser_time;
use super::x509::CertInfo;

/// Outcome of the path check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChainStatus {
    /// A path reaches the anchor with this subject.
    Valid { anchor: String },
    /// No anchors were configured, so trust was not checked.
    NoAnchors,
    /// The signer's certificate was not found, so there is nothing to check.
    NoSignerCertificate,
    /// No path to any anchor.
    Untrusted { reason: String },
    /// A certificate on the path is outside its validity period at `at`.
    Expired {
        subject: String,
        #[serde(serialize_with = "ser_time")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "ser_time")]
        not_before: DateTime<Utc>,
        #[serde(serialize_with = "ser_time")]
        not_after: DateTime<Utc>,
    },
    /// A certificate's signature does not verify with its issuer's key.
    BadCertSignature { subject: String, reason: String },
    /// An intermediate issuer is not a CA (basicConstraints/keyUsage).
    NotCa { subject: String },
}

impl ChainStatus {
    pub fn is_valid(&self) -> bool {
        matches!(self, ChainStatus::Valid { .. })
    }
}

impl std::fmt::Display for ChainStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainStatus::Valid { anchor } => write!(f, "trusted via \"{anchor}\""),
            ChainStatus::NoAnchors => f.write_str("no trust anchors configured"),
            ChainStatus::NoSignerCertificate => {
                f.write_str("the signer's certificate is missing, trust not checked")
            }
            ChainStatus::Untrusted { reason } => write!(f, "untrusted: {reason}"),
            ChainStatus::Expired {
                subject,
                at,
                not_before,
                not_after,
            } => write!(
                f,
                "certificate \"{subject}\" is not valid at {} (valid from {} to {})",
                at.to_rfc3339(),
                not_before.to_rfc3339(),
                not_after.to_rfc3339()
            ),
            ChainStatus::BadCertSignature { subject, reason } => {
                write!(f, "bad signature on certificate \"{subject}\": {reason}")
            }
            ChainStatus::NotCa { subject } => {
                write!(
                    f,
                    "issuer \"{subject}\" is not allowed to issue certificates"
                )
            }
        }
    }
}

const MAX_DEPTH: usize = 8;

/// Builds a path from `leaf` through `pool` to one of `anchors`, checking each
/// certificate's signature and validity at `at`. Anchors are trusted as given (they
/// may be intermediates such as "AgID CA1"), but their validity is still checked.
pub(crate) fn check_chain(
    leaf: &CertInfo,
    pool: &[CertInfo],
    anchors: &[CertInfo],
    at: DateTime<Utc>,
) -> ChainStatus {
    if anchors.is_empty() {
        return ChainStatus::NoAnchors;
    }
    let mut used = vec![false; pool.len()];
    match walk(leaf, pool, anchors, at, 0, &mut used) {
        Ok(anchor) => ChainStatus::Valid { anchor },
        Err(e) => e,
    }
}

fn validity(cert: &CertInfo, at: DateTime<Utc>) -> Result<(), ChainStatus> {
    let (not_before, not_after) = (cert.not_before(), cert.not_after());
    if at < not_before || at > not_after {
        return Err(ChainStatus::Expired {
            subject: cert.subject(),
            at,
            not_before,
            not_after,
        });
    }
    Ok(())
}

/// Ok(anchor subject) or the first failure met (more telling than "no path").
fn walk(
    cert: &CertInfo,
    pool: &[CertInfo],
    anchors: &[CertInfo],
    at: DateTime<Utc>,
    depth: usize,
    used: &mut [bool],
) -> Result<String, ChainStatus> {
    validity(cert, at)?;
    if anchors.iter().any(|a| a.der == cert.der) {
        return Ok(cert.subject());
    }
    if depth >= MAX_DEPTH {
        return Err(ChainStatus::Untrusted {
            reason: "certificate path too long".into(),
        });
    }
    let mut failure = None;
    for anchor in anchors.iter().filter(|a| a.subject_der == cert.issuer_der) {
        match cert.verify_issued_by(anchor) {
            Ok(()) => match validity(anchor, at) {
                Ok(()) => return Ok(anchor.subject()),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            },
            Err(reason) => {
                failure.get_or_insert(ChainStatus::BadCertSignature {
                    subject: cert.subject(),
                    reason,
                });
            }
        }
    }
    for (i, issuer) in pool.iter().enumerate() {
        if used[i] || issuer.der == cert.der || issuer.subject_der != cert.issuer_der {
            continue;
        }
        if !issuer.can_issue_certs() {
            failure.get_or_insert(ChainStatus::NotCa {
                subject: issuer.subject(),
            });
            continue;
        }
        if let Err(reason) = cert.verify_issued_by(issuer) {
            failure.get_or_insert(ChainStatus::BadCertSignature {
                subject: cert.subject(),
                reason,
            });
            continue;
        }
        // stays marked: a certificate is tried once per search, which bounds the work
        used[i] = true;
        match walk(issuer, pool, anchors, at, depth + 1, used) {
            Ok(anchor) => return Ok(anchor),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    Err(failure.unwrap_or_else(|| ChainStatus::Untrusted {
        reason: format!(
            "no trust anchor for \"{}\" (issuer \"{}\")",
            cert.subject(),
            cert.issuer()
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smime::certs::generate_intermediate_ca;
    use crate::smime::testutil::{fixture, years};
    use crate::smime::{generate_signing_cert, GeneratedCert};

    fn info(c: &GeneratedCert) -> CertInfo {
        CertInfo::parse(&c.cert_der).unwrap()
    }

    #[test]
    fn three_level_paths() {
        let f = fixture();
        let (nb, na) = years(1);
        let inter = generate_intermediate_ca(&f.ca, "Mid", nb, na).unwrap();
        let leaf = generate_signing_cert(&inter, "Leaf PEC", "l@leaf.example", nb, na).unwrap();
        let root = vec![info(&f.ca)];
        let mid = vec![info(&inter)];
        let leaf = info(&leaf);
        let both = vec![leaf.clone(), mid[0].clone()];
        let alone = vec![leaf.clone()];
        let now = Utc::now();
        assert_eq!(
            check_chain(&leaf, &both, &root, now),
            ChainStatus::Valid {
                anchor: root[0].subject()
            }
        );
        // an intermediate anchor ends the path early, and need not be in the message
        assert_eq!(
            check_chain(&leaf, &alone, &mid, now),
            ChainStatus::Valid {
                anchor: mid[0].subject()
            }
        );
        // missing intermediate
        assert!(matches!(
            check_chain(&leaf, &alone, &root, now),
            ChainStatus::Untrusted { .. }
        ));
        assert_eq!(check_chain(&leaf, &[], &[], now), ChainStatus::NoAnchors);
        // past the validity of all three
        let later = now + chrono::Duration::days(400);
        assert!(matches!(
            check_chain(&leaf, &mid, &root, later),
            ChainStatus::Expired { .. }
        ));
    }

    #[test]
    fn a_leaf_cannot_issue() {
        let f = fixture();
        let (nb, na) = years(1);
        // issued by the (non-CA) signing certificate
        let sub = generate_signing_cert(&f.leaf, "Sub", "s@sub.example", nb, na).unwrap();
        let (root, leaf, sub) = (info(&f.ca), info(&f.leaf), info(&sub));
        let status = check_chain(&sub, &[sub.clone(), leaf], &[root], Utc::now());
        assert!(matches!(status, ChainStatus::NotCa { .. }), "{status}");
        assert!(status.to_string().contains("not allowed to issue"));
    }

    #[test]
    fn display_and_json() {
        let s = ChainStatus::Untrusted {
            reason: "no path".into(),
        };
        assert_eq!(s.to_string(), "untrusted: no path");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["status"], "untrusted");
        assert_eq!(json["reason"], "no path");
        let t = Utc::now();
        let e = ChainStatus::Expired {
            subject: "CN=x".into(),
            at: t,
            not_before: t,
            not_after: t,
        };
        assert!(serde_json::to_value(&e).unwrap()["at"].is_string());
        assert!(!e.is_valid());
    }
}
