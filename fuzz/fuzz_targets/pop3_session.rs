//! A whole POP3 session (after TLS) over an in-memory stream, against a store holding
//! a few real PEC messages. Any login succeeds (password `wrong` fails).
#![no_main]
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pecbox::pop3::Pop3Limits;
use pecbox_fuzz::{client, peer, runtime, store, AnyLogin};

fuzz_target!(|data: &[u8]| {
    let store = store();
    let limits = Pop3Limits {
        idle_timeout: Duration::from_secs(5),
        max_commands: 200,
        ..Pop3Limits::default()
    };
    runtime().block_on(async {
        let (server, conn) = tokio::io::duplex(64 * 1024);
        let session =
            pecbox::fuzzing::pop3_session(server, peer(), store, Arc::new(AnyLogin), limits);
        tokio::join!(session, client(conn, data));
    });
});
