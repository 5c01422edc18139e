//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer): the protocol
//! sessions and parsers that meet hostile input, callable from outside the crate without
//! a TLS handshake. Nothing in the daemon calls them; the parsers that are public
//! anyway (`smtp::command`, `pec::classify`, `pec::daticert`, `provider::index`,
//! `registro::verify_export`, `cli::verify`) are called directly by the targets.
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::imap::{ImapAuth, ImapLimits};
use crate::pop3::{Pop3Auth, Pop3Limits};
use crate::smtp::{Limits, Role, SmtpBackend};
use crate::store::Store;

/// One SMTP session on an accepted plain TCP connection, until the client closes.
/// `tls_up`: behave as if TLS were already negotiated (AUTH and submission reachable).
pub async fn smtp_session<B: SmtpBackend>(
    tcp: TcpStream,
    peer: SocketAddr,
    role: Role,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    backend: Arc<B>,
    tls_up: bool,
) {
    crate::smtp::server::session_on_plain(tcp, peer, role, tls, limits, backend, tls_up).await
}

/// One IMAP session over `stream` (no TLS), until the client closes.
pub async fn imap_session<A: ImapAuth, S>(
    stream: S,
    peer: SocketAddr,
    store: Store,
    auth: Arc<A>,
    limits: ImapLimits,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    crate::imap::server::session_on_stream(stream, peer, store, auth, limits).await
}

/// One POP3 session over `stream` (no TLS), until the client closes.
pub async fn pop3_session<A: Pop3Auth, S>(
    stream: S,
    peer: SocketAddr,
    store: Store,
    auth: Arc<A>,
    limits: Pop3Limits,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    crate::pop3::server::session_on_stream(stream, peer, store, auth, limits).await
}

/// One POP3 command line (without CRLF); true when it parses.
pub fn pop3_command(line: &[u8]) -> bool {
    crate::pop3::command::parse(line).is_ok()
}

/// A panel request body with its Content-Type, parsed as the panel does before any
/// handler runs (CSRF check and urlencoded pairs, or the multipart upload reader).
pub async fn panel_body(content_type: &str, body: Vec<u8>) {
    crate::panel::parse_body(content_type, body).await
}

/// What IMAP FETCH and SEARCH make of a stored message: ENVELOPE, BODY and
/// BODYSTRUCTURE, `BODY[section]` for a set of sections, the header and body text.
pub fn imap_message(raw: &[u8]) {
    use std::num::NonZeroU32;

    use imap_codec::imap_types::core::{AString, Vec1};
    use imap_codec::imap_types::fetch::{Part, Section};

    let m = crate::imap::mime::Mime::parse(raw);
    let _ = m.envelope();
    let _ = m.structure(true);
    let _ = m.structure(false);
    let _ = m.sent_date();
    let _ = m.body_text();
    let _ = m.header_block_text();
    let _ = m.header_text("subject");
    let _ = m.section(None);
    let names = || Vec1::from(AString::try_from("subject").expect("an atom"));
    let mut sections = vec![
        Section::Header(None),
        Section::Text(None),
        Section::HeaderFields(None, names()),
        Section::HeaderFieldsNot(None, names()),
    ];
    for path in [
        &[1u32][..],
        &[2],
        &[1, 1],
        &[2, 1],
        &[1, 2, 1],
        &[3, 1, 1, 1],
    ] {
        let nz: Vec<NonZeroU32> = path.iter().filter_map(|n| NonZeroU32::new(*n)).collect();
        let Ok(part) = Vec1::try_from(nz).map(Part) else {
            continue;
        };
        sections.extend([
            Section::Part(part.clone()),
            Section::Header(Some(part.clone())),
            Section::Text(Some(part.clone())),
            Section::HeaderFields(Some(part.clone()), names()),
            Section::Mime(part),
        ]);
    }
    for s in &sections {
        let _ = m.section(Some(s));
    }
}
