//! S/MIME for PEC: detached `multipart/signed` (RFC 5751/1847) over CMS SignedData
//! (RFC 5652). ring does the arithmetic; the RustCrypto `cms`/`x509-cert`/`der` crates
//! the structures.
