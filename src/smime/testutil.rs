//! Shared test fixtures (RSA key generation is slow, so generate once).
use std::sync::OnceLock;

use chrono::{DateTime, Duration, Utc};

use super::{generate_ca, generate_signing_cert, GeneratedCert, Signer};

pub(crate) struct Fixture {
    pub ca: GeneratedCert,
    pub leaf: GeneratedCert,
    pub signer: Signer,
}

pub(crate) fn years(n: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now();
    (now - Duration::days(1), now + Duration::days(365 * n))
}

pub(crate) fn signer_for(leaf: &GeneratedCert, ca: &GeneratedCert) -> Signer {
    Signer::from_pem(
        &format!("{}{}", leaf.cert_pem, ca.cert_pem),
        &leaf.key_pkcs8_pem,
    )
    .unwrap()
}

pub(crate) fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (nb, na) = years(2);
        let ca = generate_ca("Test PEC", nb, na).unwrap();
        let leaf = generate_signing_cert(
            &ca,
            "Test PEC",
            "posta-certificata@pec.test.example",
            nb,
            na,
        )
        .unwrap();
        let signer = signer_for(&leaf, &ca);
        Fixture { ca, leaf, signer }
    })
}

/// A small multipart/mixed entity with CRLF line endings.
pub(crate) const ENTITY: &[u8] = b"Content-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n--inner\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nRicevuta di accettazione\r\n--inner\r\nContent-Type: application/xml; name=\"daticert.xml\"\r\n\r\n<postacert/>\r\n--inner--\r\n";
