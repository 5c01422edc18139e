//! What the fuzz targets share: one tokio runtime, a throw-away store holding a few
//! real PEC messages, a TLS configuration, and backends that accept everything.
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use pecbox::store::{Mailbox, OrdinaryMailPolicy, Store, INBOX};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The mailbox every login in the session targets becomes.
pub const USER: &str = "alice@pec.fuzz.example";
pub const PEER: &str = "192.0.2.7:40000";

/// Messages kept in the INBOX for FETCH / RETR / SEARCH to work on.
pub const MESSAGES: &[&[u8]] = &[
    include_bytes!("../../tests/data/pec-samples/biagioT_java-pec-parser/accettazione.eml"),
    include_bytes!("../../tests/data/pec-samples/danzipie_go-pec/email_3-busta-trasporto.eml"),
    b"From: Bob <bob@pec.fuzz.example>\r\nTo: alice@pec.fuzz.example\r\nSubject: one\r\nDate: Tue, 14 Nov 2023 23:00:00 +0100\r\nMessage-ID: <one@pec.fuzz.example>\r\n\r\nHello Alice\r\n",
    b"Subject: two\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody 1\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n",
];

pub fn peer() -> SocketAddr {
    PEER.parse().expect("valid address")
}

/// A current-thread runtime with time and I/O, made once per process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// A self-signed TLS configuration (only STARTTLS attempts ever reach it).
pub fn tls() -> Arc<rustls::ServerConfig> {
    static TLS: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    TLS.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        pecbox::tls::server_config(&ck.cert.pem(), &ck.signing_key.serialize_pem())
            .expect("tls config")
    })
    .clone()
}

/// The store of this process (in /dev/shm when there is one), with [`USER`]'s mailbox.
/// Before each run its INBOX is filled up again with [`MESSAGES`] when a previous run
/// deleted some, so every run finds something to fetch.
pub fn store() -> Store {
    static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    let (_, store) = STORE.get_or_init(|| {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temporary directory");
        let store = Store::open(&dir.path().join("db")).expect("store");
        store
            .add_mailbox(&Mailbox {
                address: USER.into(),
                password_hash: String::new(),
                quota: None,
                disabled: false,
                created: 0,
                ordinary_mail: OrdinaryMailPolicy::Refuse,
            })
            .expect("mailbox");
        (dir, store)
    });
    let have = store.list(USER, INBOX).map(|l| l.len()).unwrap_or(0);
    if have < MESSAGES.len() {
        for m in MESSAGES {
            let _ = store.append(USER, INBOX, m, &[], 1_700_000_000);
        }
    }
    store.clone()
}

use pecbox::provider::auth::LoginError;

/// Accepts any login as [`USER`], except the password `wrong`.
pub struct AnyLogin;

fn login(password: &str) -> Result<String, LoginError> {
    if password == "wrong" {
        Err(LoginError::Rejected)
    } else {
        Ok(USER.into())
    }
}

impl pecbox::imap::ImapAuth for AnyLogin {
    async fn authenticate(
        &self,
        _: SocketAddr,
        _: &str,
        password: &str,
    ) -> Result<String, LoginError> {
        login(password)
    }
}

impl pecbox::pop3::Pop3Auth for AnyLogin {
    async fn authenticate(
        &self,
        _: SocketAddr,
        _: &str,
        password: &str,
    ) -> Result<String, LoginError> {
        login(password)
    }
}

/// Writes `input` as the client, closes its sending side, and reads everything the
/// server says until it closes (or `limit` bytes: the rest is drained).
pub async fn client<S: tokio::io::AsyncRead + AsyncWrite + Unpin>(stream: S, input: &[u8]) {
    let (mut r, mut w) = tokio::io::split(stream);
    let write = async {
        let _ = w.write_all(input).await;
        let _ = w.shutdown().await;
    };
    let read = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::join!(write, read);
}
