//! A whole SMTP session on a loopback connection: command lines, AUTH exchanges, DATA
//! with dot-unstuffing and the limits. The first byte picks the listener role and
//! whether TLS counts as up; the rest is what the client sends. DATA goes through
//! `pec::classify`, as the reception point does.
#![no_main]
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pecbox::smtp::{Envelope, Limits, Reply, Role, SessionInfo, SmtpBackend};
use pecbox_fuzz::{client, runtime, tls};
use tokio::net::{TcpListener, TcpStream};

struct Backend;

impl SmtpBackend for Backend {
    async fn authenticate(&self, _: &SessionInfo, user: &str, pw: &str) -> Result<String, Reply> {
        if pw == "wrong" {
            Err(Reply::new(535, "5.7.8", "no"))
        } else {
            Ok(user.to_string())
        }
    }
    async fn mail_from(&self, _: &SessionInfo, path: &str, _: Option<u64>) -> Result<(), Reply> {
        if path.starts_with("bad") {
            Err(Reply::new(550, "5.7.1", "no"))
        } else {
            Ok(())
        }
    }
    async fn rcpt_to(&self, _: &SessionInfo, _: &Envelope, path: &str) -> Result<(), Reply> {
        if path.starts_with("bad") {
            Err(Reply::new(550, "5.1.1", "no"))
        } else {
            Ok(())
        }
    }
    async fn data(&self, _: &SessionInfo, _: Envelope, message: Vec<u8>) -> Reply {
        let c = pecbox::pec::classify::classify(&message);
        Reply::ok(c.reason)
    }
}

fn listener() -> &'static TcpListener {
    static L: OnceLock<TcpListener> = OnceLock::new();
    L.get_or_init(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let _guard = runtime().enter();
        TcpListener::from_std(l).expect("listener")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let role = match mode % 3 {
        0 => Role::Reception,
        1 => Role::Submission,
        _ => Role::Submissions,
    };
    let tls_up = mode & 4 != 0;
    let limits = Limits {
        max_message_bytes: 64 * 1024,
        max_line: 512,
        max_data_line: 1000,
        max_recipients: 5,
        max_errors: 10,
        max_commands: 200,
        idle_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    runtime().block_on(async {
        let l = listener();
        let addr = l.local_addr().expect("addr");
        let (conn, accepted) = tokio::join!(TcpStream::connect(addr), l.accept());
        let (conn, (server, peer)) = (conn.expect("connect"), accepted.expect("accept"));
        let session = pecbox::fuzzing::smtp_session(
            server,
            peer,
            role,
            tls(),
            limits,
            Arc::new(Backend),
            tls_up,
        );
        tokio::join!(session, client(conn, input));
    });
});
