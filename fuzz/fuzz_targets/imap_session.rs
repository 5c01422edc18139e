//! A whole IMAP session (after TLS) over an in-memory stream: imap-codec's framing and
//! command parsing, then our handling of each command against a store holding a few
//! real PEC messages. Any login succeeds (password `wrong` fails).
#![no_main]
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pecbox::imap::ImapLimits;
use pecbox_fuzz::{client, peer, runtime, store, AnyLogin};

fuzz_target!(|data: &[u8]| {
    let store = store();
    let limits = ImapLimits {
        max_line: 8 * 1024,
        max_message_bytes: 64 * 1024,
        idle_timeout: Duration::from_secs(5),
        idle_command_timeout: Duration::from_secs(5),
        ..ImapLimits::default()
    };
    runtime().block_on(async {
        let (server, conn) = tokio::io::duplex(64 * 1024);
        let session =
            pecbox::fuzzing::imap_session(server, peer(), store, Arc::new(AnyLogin), limits);
        tokio::join!(session, client(conn, data));
    });
});
