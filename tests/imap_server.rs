//! IMAPS against a real store over real TLS: Python's imaplib and the imapclient
//! package for the clients' view, curl as a batch mail client, and a raw TLS client for
//! what a well-behaved client never sends.
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{Duration as Days, Utc};
use pecbox::imap::{serve, ImapAuth, ImapLimits};
use pecbox::pec::kind::MessageKind;
use pecbox::smime::{generate_ca, generate_tls_cert, GeneratedCert};
use pecbox::store::{Mailbox, OrdinaryMailPolicy, Store, INBOX};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

const USER: &str = "alice@pec.test.example";
const PASSWORD: &str = "correct horse";

const MSG2: &[u8] = b"From: Bob <bob@pec.test.example>\r\nTo: alice@pec.test.example\r\nSubject: one\r\nDate: Tue, 14 Nov 2023 23:00:00 +0100\r\nMessage-ID: <one@pec.test.example>\r\n\r\nHello Alice\r\n";
const MSG3: &[u8] = b"Subject: two\r\n\r\nbody 1\r\nbody 2\r\n";
/// 2023-11-14 22:13:20 UTC: 14 November in Rome too.
const WHEN: i64 = 1_700_000_000;

struct Certs {
    ca: GeneratedCert,
    tls: GeneratedCert,
}

fn certs() -> &'static Certs {
    static C: OnceLock<Certs> = OnceLock::new();
    C.get_or_init(|| {
        let nb = Utc::now() - Days::days(1);
        let na = Utc::now() + Days::days(30);
        let ca = generate_ca("Test IMAP", nb, na).unwrap();
        let tls = generate_tls_cert(&ca, &["localhost".into()], nb, na).unwrap();
        Certs { ca, tls }
    })
}

/// The PEC message of the tests: a signed busta di trasporto.
fn busta() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        let p = common::TestProvider::new("Test", "pec.example");
        p.sign(&common::build(MessageKind::BustaTrasporto, &p.gestore))
    })
}

// The TLS configurations the daemon itself uses.
fn server_tls() -> Arc<rustls::ServerConfig> {
    let c = certs();
    pecbox::tls::server_config(&c.tls.cert_pem, &c.tls.key_pkcs8_pem).unwrap()
}

fn connector() -> tokio_rustls::TlsConnector {
    let ca = certs().ca.cert_pem.clone();
    tokio_rustls::TlsConnector::from(pecbox::tls::client_config(&[ca], false).unwrap())
}

struct FixedPassword;

impl ImapAuth for FixedPassword {
    async fn authenticate(
        &self,
        _peer: SocketAddr,
        user: &str,
        password: &str,
    ) -> Result<String, pecbox::provider::auth::LoginError> {
        // a bug behind the adapter, set off by one client's input
        assert_ne!(user, "boom", "the authenticator panicked");
        if user.eq_ignore_ascii_case(USER) && password == PASSWORD {
            Ok(USER.to_string())
        } else {
            Err(pecbox::provider::auth::LoginError::Rejected)
        }
    }
}

struct Server {
    addr: SocketAddr,
    store: Store,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    dir: tempfile::TempDir,
}

fn new_store(dir: &Path) -> Store {
    let store = Store::open(&dir.join("db")).unwrap();
    store
        .add_mailbox(&Mailbox {
            address: USER.into(),
            password_hash: String::new(),
            quota: None,
            disabled: false,
            created: 0,
            ordinary_mail: OrdinaryMailPolicy::Refuse,
        })
        .unwrap();
    for m in [busta(), MSG2, MSG3] {
        store.append(USER, INBOX, m, &[], WHEN).unwrap();
    }
    store.flush().unwrap();
    std::fs::write(dir.join("ca.pem"), &certs().ca.cert_pem).unwrap();
    store
}

impl Server {
    async fn start(limits: ImapLimits) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = new_store(dir.path());
        Self::start_on(dir, store, limits).await
    }

    async fn start_on(dir: tempfile::TempDir, store: Store, limits: ImapLimits) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(serve(
            listener,
            server_tls(),
            store.clone(),
            Arc::new(FixedPassword),
            limits,
            rx,
        ));
        Server {
            addr,
            store,
            stop,
            task,
            dir,
        }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    async fn client(&self) -> Client {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let tls = connector()
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (r, w) = tokio::io::split(tls);
        let mut c = Client {
            r: BufReader::new(r),
            w,
        };
        let greeting = c.line().await;
        assert!(
            greeting.starts_with("* OK [CAPABILITY IMAP4REV1"),
            "{greeting}"
        );
        c
    }

    /// Stops the server; gives back the folder (the store is dropped).
    async fn stop(self) -> tempfile::TempDir {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("serve ends after shutdown")
            .unwrap();
        self.dir
    }

    /// Runs tests/support/imap_clients.py in `mode`; its JSON answer.
    async fn python(&self, mode: &str) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/imap_clients.py");
        let args = vec![
            script.display().to_string(),
            mode.to_string(),
            self.addr.port().to_string(),
            self.ca_path().display().to_string(),
            USER.to_string(),
            PASSWORD.to_string(),
            self.dir.path().display().to_string(),
        ];
        let out = tokio::task::spawn_blocking(move || Command::new("python3").args(args).output())
            .await
            .unwrap()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        // shown when an assertion fails
        println!("{mode}: {answer:#}");
        answer
    }
}

struct Client {
    r: BufReader<ReadHalf<TlsStream<TcpStream>>>,
    w: WriteHalf<TlsStream<TcpStream>>,
}

impl Client {
    async fn send(&mut self, data: &[u8]) {
        self.w.write_all(data).await.unwrap();
        self.w.flush().await.unwrap();
    }

    /// One line without CRLF; "" at end of stream.
    async fn line(&mut self) -> String {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), self.r.read_until(b'\n', &mut buf))
            .await
            .expect("server answers in time")
            .ok();
        String::from_utf8_lossy(&buf).trim_end().to_string()
    }

    /// Sends a command; every line up to the tagged answer (included).
    async fn cmd(&mut self, line: &str) -> Vec<String> {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let tag = line.split(' ').next().unwrap().to_string();
        self.until(&tag).await
    }

    async fn until(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line().await;
            assert!(!l.is_empty(), "connection closed; got {lines:?}");
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l);
            if done {
                return lines;
            }
        }
    }

    async fn login(&mut self) {
        let r = self.cmd(&format!("L LOGIN {USER} \"{PASSWORD}\"")).await;
        assert!(r.last().unwrap().starts_with("L OK"), "{r:?}");
    }

    /// True when the server closes the connection.
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), self.r.read_to_end(&mut rest))
            .await
            .is_ok()
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| match s {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn joined(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(joined).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaplib_session() {
    let server = Server::start(ImapLimits::default()).await;
    let r = server.python("imaplib").await;
    let caps = strs(&r["capabilities"]);
    for cap in [
        "IMAP4REV1",
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "NAMESPACE",
        "SPECIAL-USE",
        "LITERAL+",
        "ENABLE",
        "AUTH=PLAIN",
        "AUTH=LOGIN",
    ] {
        assert!(caps.contains(&cap.to_string()), "{cap} in {caps:?}");
    }
    assert_eq!(r["login"][0], "OK");
    let list = strs(&r["list"]);
    for (attr, name) in [
        ("\\Sent", "Sent"),
        ("\\Drafts", "Drafts"),
        ("\\Trash", "Trash"),
        ("\\Archive", "Archive"),
        ("\\Junk", "Junk"),
    ] {
        assert!(
            list.iter()
                .any(|l| l.contains(attr) && l.ends_with(&format!("\"/\" {name}"))),
            "{attr} {name} in {list:?}"
        );
    }
    assert!(list.iter().any(|l| l.ends_with("INBOX")), "{list:?}");
    assert_eq!(strs(&r["list_pattern"]).len(), 1, "{}", r["list_pattern"]);
    assert_eq!(r["select"], serde_json::json!(["OK", ["3"]]));
    let state = server.store.folder_state(USER, INBOX).unwrap().unwrap();
    assert_eq!(
        r["uidvalidity"],
        serde_json::json!([state.uidvalidity.to_string()])
    );
    assert_eq!(r["uidnext"], serde_json::json!(["4"]));

    // The PEC message: its structure as a client sees it.
    let meta = joined(&r["fetch_meta"]);
    assert!(meta.contains("UID 1 FLAGS ()"), "{meta}");
    assert!(
        meta.contains("INTERNALDATE \"14-Nov-2023 23:13:20 +0100\""),
        "{meta}"
    );
    assert!(
        meta.contains(&format!("RFC822.SIZE {}", busta().len())),
        "{meta}"
    );
    assert!(meta.contains("ENVELOPE (\"Mon, "), "{meta}");
    let bs = meta
        .split("BODYSTRUCTURE")
        .nth(1)
        .unwrap()
        .to_ascii_uppercase();
    for needle in [
        "\"SIGNED\" (",
        "\"PROTOCOL\" \"APPLICATION/PKCS7-SIGNATURE\"",
        "\"MIXED\"",
        "\"ALTERNATIVE\"",
        "(\"TEXT\" \"PLAIN\"",
        "(\"TEXT\" \"HTML\"",
        "(\"APPLICATION\" \"XML\" (\"NAME\" \"DATICERT.XML\")",
        "(\"MESSAGE\" \"RFC822\" (\"NAME\" \"POSTACERT.EML\")",
        "(\"APPLICATION\" \"PKCS7-SIGNATURE\"",
        "(\"APPLICATION\" \"PDF\"",
        "\"FATTURA N. 12",
    ] {
        assert!(bs.contains(needle), "{needle} in {bs}");
    }
    // Parts by number: daticert.xml (1.2), postacert.eml (1.3) and inside it.
    let parts = joined(&r["fetch_parts"]);
    assert!(parts.contains("BODY[1.3] {"), "{parts}");
    assert!(parts.contains("Subject: Fattura n. 12"), "{parts}");
    assert!(parts.contains("BODY[1.3.MIME]"), "{parts}");
    assert!(parts.contains("Content-Type: message/rfc822"), "{parts}");
    assert!(parts.contains("BODY[1.2]<0> {40}"), "{parts}");
    assert!(parts.contains("PD94bWwgdmVyc2lvbj0i"), "{parts}");
    let fields = r["fetch_fields"].as_str().unwrap();
    assert!(
        fields.contains("Subject: POSTA CERTIFICATA: Fattura"),
        "{fields}"
    );
    assert_eq!(fields.matches("\r\n").count(), 3, "{fields:?}");
    assert!(
        fields.contains("X-Trasporto: posta-certificata"),
        "{fields}"
    );
    assert!(fields.ends_with("\r\n\r\n"), "{fields:?}");
    let nested = joined(&r["fetch_nested"]);
    assert!(nested.contains("Message-ID: <opec-test"), "{nested}");
    assert!(nested.contains("multipart/mixed"), "{nested}");
    assert!(nested.contains("In allegato la fattura."), "{nested}");

    // FETCH BODY[] sets \Seen, BODY.PEEK does not.
    assert!(joined(&r["flags_before"]).contains("FLAGS ()"));
    use base64::Engine;
    let body2 = base64::engine::general_purpose::STANDARD
        .decode(r["body2"].as_str().unwrap())
        .unwrap();
    assert_eq!(body2, MSG2);
    assert!(
        joined(&r["flags_after"]).contains("FLAGS (\\Seen)"),
        "{}",
        r["flags_after"]
    );
    let search = &r["search"];
    let expect = [
        ("all", "1 2 3"),
        ("unseen", "1 3"),
        ("seen", "2"),
        ("from", "2"),
        ("subject", "1"),
        ("header", "1"),
        ("since", "1 2 3"),
        ("before", ""),
        ("on", "1 2 3"),
        ("larger", "1"),
        ("smaller", "2 3"),
        ("text", "2"),
        ("body", "1"),
        ("not", "1 3"),
        ("or", "2 3"),
        ("to", "2"),
        ("cc", "1"),
        ("seqset", "2 3"),
        ("uidset", "1 3"),
    ];
    for (key, want) in expect {
        assert_eq!(search[key], want, "SEARCH {key}");
    }
    assert_eq!(r["uid_search"], "1 2 3");
    let added = joined(&r["store_add"]);
    assert!(
        added.contains("\\Flagged") && added.contains("$Label1"),
        "{added}"
    );
    assert!(!joined(&r["store_remove"]).contains("$Label1"));
    assert_eq!(r["store_silent"], serde_json::json!([null]));
    assert_eq!(r["flagged"], "3");
    assert_eq!(r["keyword"], "");
    assert_eq!(r["copy"][0], "OK");
    let archive = server.store.folder_state(USER, "Archive").unwrap().unwrap();
    assert!(
        joined(&r["copy"]).contains(&format!("[COPYUID {} 1:2 1:2]", archive.uidvalidity)),
        "{}",
        r["copy"]
    );
    assert!(
        joined(&r["copy_missing"]).contains("TRYCREATE"),
        "{}",
        r["copy_missing"]
    );
    assert_eq!(r["uid_move"][0], "OK");
    assert_eq!(r["after_move"], "1 2");
    assert_eq!(r["append"][0], "OK");
    assert!(
        joined(&r["append"]).contains("APPENDUID"),
        "{}",
        r["append"]
    );
    let drafts = joined(&r["status_drafts"]);
    assert!(
        drafts.contains("MESSAGES 1") && drafts.contains("UIDNEXT 2"),
        "{drafts}"
    );
    assert!(drafts.contains("UNSEEN 0"), "{drafts}");
    assert!(joined(&r["status_archive"]).contains("MESSAGES 2"));
    // imaplib also keeps the EXPUNGE (3) that came with UID MOVE
    assert_eq!(r["expunge"], serde_json::json!(["OK", ["3", "1"]]));
    assert_eq!(r["after_expunge"], "1");
    assert_eq!(r["create"][0], "OK");
    let all = joined(&r["list_all"]);
    assert!(all.contains("(\\HasChildren) \"/\" Progetti"), "{all}");
    assert!(
        all.contains("(\\HasNoChildren) \"/\" Progetti/2026"),
        "{all}"
    );
    assert_eq!(r["rename"][0], "OK");
    assert_eq!(strs(&r["list_renamed"]).len(), 2, "{}", r["list_renamed"]);
    assert_eq!(r["delete_parent"][0], "NO");
    assert_eq!(r["delete_child"][0], "OK");
    assert_eq!(r["delete_inbox"][0], "NO");
    assert_eq!(r["subscribe"][0], "OK");
    assert!(joined(&r["lsub"]).contains("Archive"));
    assert!(
        joined(&r["namespace"]).contains("((\"\" \"/\")) NIL NIL"),
        "{}",
        r["namespace"]
    );
    assert_eq!(r["examine"][0], "OK");
    assert_eq!(r["store_readonly"][0], "NO");
    assert!(
        joined(&r["store_readonly"]).contains("[READ-ONLY]"),
        "{}",
        r["store_readonly"]
    );
    let draft = joined(&r["fetch_draft"]);
    assert!(
        draft.contains("\\Draft") && draft.contains("\\Seen"),
        "{draft}"
    );
    assert!(draft.contains("14-Nov-2023 23:13:20 +0100"), "{draft}");
    assert!(draft.contains("unfinished"), "{draft}");
    assert_eq!(r["unselect"][0], "OK");
    assert_eq!(r["logout"][0], "BYE");
    // What imaplib did, seen in the store.
    assert_eq!(server.store.list(USER, "Archive").unwrap().len(), 2);
    assert_eq!(server.store.list(USER, "Trash").unwrap().len(), 1);
    assert_eq!(server.store.list(USER, INBOX).unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imapclient_session_with_idle() {
    let check = Command::new("python3")
        .args(["-c", "import imapclient"])
        .status()
        .unwrap();
    if !check.success() {
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "imapclient"])
            .status()
            .unwrap();
        assert!(installed.success(), "pip install imapclient");
    }
    let server = Server::start(ImapLimits::default()).await;
    // The punto di consegna's part: append to INBOX while the client idles.
    let marker = server.dir.path().join("idling");
    let store = server.store.clone();
    let deliverer = tokio::spawn(async move {
        for _ in 0..400 {
            if marker.exists() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let raw = b"From: posta-certificata@pec.example\r\nSubject: ACCETTAZIONE: delivered while idling\r\n\r\nciao\r\n";
                return Some(store.append(USER, INBOX, raw, &[], WHEN).unwrap());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    });
    let r = server.python("imapclient").await;
    let delivered = deliverer.await.unwrap().expect("client reached IDLE");
    assert!(r["login"].as_str().unwrap().contains("logged in"));
    let caps = strs(&r["capabilities"]);
    assert!(caps.contains(&"IDLE".to_string()) && caps.contains(&"MOVE".to_string()));
    assert_eq!(r["sent_folder"], "Sent");
    assert_eq!(r["trash_folder"], "Trash");
    let folders = joined(&r["folders"]);
    assert!(folders.contains("\\Junk"), "{folders}");
    assert_eq!(r["select"]["EXISTS"], 3);
    assert_eq!(r["uids"], serde_json::json!([1, 2, 3]));
    assert_eq!(r["bs_multipart"], true);
    assert_eq!(r["bs_subtype"].as_str().unwrap().to_lowercase(), "signed");
    assert_eq!(r["inner_subtype"].as_str().unwrap().to_lowercase(), "mixed");
    let inner: Vec<String> = strs(&r["inner_parts"])
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    assert_eq!(
        inner,
        vec!["multipart/alternative", "application/xml", "message/rfc822"]
    );
    assert!(joined(&r["rfc822_params"])
        .to_lowercase()
        .contains("postacert.eml"));
    assert!(
        r["rfc822_envelope_subject"]
            .as_str()
            .unwrap()
            .starts_with("Fattura n. 12"),
        "{}",
        r["rfc822_envelope_subject"]
    );
    assert_eq!(
        r["rfc822_inner_subtype"].as_str().unwrap().to_lowercase(),
        "mixed"
    );
    assert!(joined(&r["xml_params"])
        .to_lowercase()
        .contains("daticert.xml"));
    assert_eq!(
        r["signature"].as_str().unwrap().to_lowercase(),
        "application/pkcs7-signature"
    );
    assert!(r["env_subject"]
        .as_str()
        .unwrap()
        .starts_with("POSTA CERTIFICATA: Fattura"));
    assert_eq!(r["size_ok"], true);
    assert_eq!(r["unseen"], serde_json::json!([1, 2, 3]));
    let flags = strs(&r["flags"]);
    assert!(flags.contains(&"\\Seen".into()) && flags.contains(&"\\Flagged".into()));
    assert_eq!(strs(&r["flags_removed"]), vec!["\\Seen"]);
    assert_eq!(r["after_move"], serde_json::json!([1, 2]));
    assert!(
        r["append"].as_str().unwrap().contains("APPENDUID"),
        "{}",
        r["append"]
    );
    assert_eq!(r["after_expunge"], serde_json::json!([1, 4]));
    let idle = joined(&r["idle"]);
    assert!(idle.contains("EXISTS"), "{idle}");
    assert_eq!(r["after_idle"], serde_json::json!([1, 4, delivered]));
    assert_eq!(r["idle_subject"], "ACCETTAZIONE: delivered while idling");
    assert_eq!(server.store.list(USER, "Junk").unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reads_a_message() {
    let server = Server::start(ImapLimits::default()).await;
    let url = format!("imaps://localhost:{}/INBOX;UID=2", server.addr.port());
    let args = vec![
        "--silent".to_string(),
        "--show-error".to_string(),
        "--max-time".to_string(),
        "20".to_string(),
        "--url".to_string(),
        url,
        "--user".to_string(),
        format!("{USER}:{PASSWORD}"),
        "--cacert".to_string(),
        server.ca_path().display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new("curl").args(args).output())
        .await
        .unwrap()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, MSG2);
    // and the PEC message, byte for byte
    let url = format!("imaps://localhost:{}/INBOX;UID=1", server.addr.port());
    let ca = server.ca_path().display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["--silent", "--show-error", "--url", &url])
            .args(["--user", &format!("{USER}:{PASSWORD}"), "--cacert", &ca])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, busta());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uids_survive_a_restart() {
    let server = Server::start(ImapLimits::default()).await;
    let mut c = server.client().await;
    c.login().await;
    let first = c.cmd("a SELECT INBOX").await;
    assert!(c
        .cmd("b STORE 2 +FLAGS (\\Deleted)")
        .await
        .last()
        .unwrap()
        .starts_with("b OK"));
    assert!(c
        .cmd("c EXPUNGE")
        .await
        .contains(&"* 2 EXPUNGE".to_string()));
    let uids = c.cmd("d UID SEARCH ALL").await;
    assert_eq!(uids[0], "* SEARCH 1 3");
    let _ = c.cmd("e LOGOUT").await;
    drop(c);
    let dir = server.stop().await;
    // a new process: the store reopened from disk
    let store = Store::open_waiting(&dir.path().join("db"), Duration::from_secs(10)).unwrap();
    let server = Server::start_on(dir, store, ImapLimits::default()).await;
    let mut c = server.client().await;
    c.login().await;
    let again = c.cmd("a SELECT INBOX").await;
    let pick = |lines: &[String], what: &str| {
        lines
            .iter()
            .find(|l| l.contains(what))
            .cloned()
            .unwrap_or_default()
    };
    assert!(!pick(&first, "UIDVALIDITY").is_empty());
    assert_eq!(pick(&first, "UIDVALIDITY"), pick(&again, "UIDVALIDITY"));
    assert_eq!(
        pick(&again, "UIDNEXT"),
        "* OK [UIDNEXT 4] predicted next UID"
    );
    assert_eq!(c.cmd("d UID SEARCH ALL").await[0], "* SEARCH 1 3");
    let ok = c.cmd("g APPEND INBOX {14+}\r\nSubject: x\r\n\r\n").await;
    assert!(ok.last().unwrap().contains("[APPENDUID"), "{ok:?}");
    assert!(ok.last().unwrap().contains(" 4]"), "{ok:?}");
    server.stop().await;
}

/// NOOP until an answer carries `what` (events travel through a thread and a channel).
async fn noop_until(c: &mut Client, what: &str) -> Vec<String> {
    for _ in 0..50 {
        let r = c.cmd("b3 NOOP").await;
        if r.iter().any(|l| l.contains(what)) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {what} came");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_see_each_other() {
    let server = Server::start(ImapLimits::default()).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.login().await;
    b.login().await;
    a.cmd("a1 SELECT INBOX").await;
    b.cmd("b1 SELECT INBOX").await;
    b.send(b"b2 IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling");
    // a new message (APPEND from the other session)
    let r = a
        .cmd("a2 APPEND INBOX (\\Flagged) {9+}\r\nSubject: \r\n")
        .await;
    assert!(r.last().unwrap().starts_with("a2 OK [APPENDUID"), "{r:?}");
    assert_eq!(b.line().await, "* 4 EXISTS");
    assert_eq!(b.line().await, "* 0 RECENT");
    // a flag change
    a.cmd("a3 STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(b.line().await, "* 1 FETCH (UID 1 FLAGS (\\Deleted))");
    // an expunge
    let r = a.cmd("a4 EXPUNGE").await;
    assert_eq!(r[0], "* 1 EXPUNGE");
    assert_eq!(b.line().await, "* 1 EXPUNGE");
    b.send(b"DONE\r\n").await;
    assert_eq!(b.line().await, "b2 OK IDLE terminated");
    // without IDLE, the news comes with the next command
    a.cmd("a5 STORE 1 +FLAGS (\\Seen)").await;
    let r = noop_until(&mut b, "FETCH").await;
    assert_eq!(
        r,
        vec!["* 1 FETCH (UID 2 FLAGS (\\Seen))", "b3 OK NOOP completed"]
    );
    // a message removed under a FETCH stays until EXPUNGE may be sent
    a.cmd("a6 STORE 1 +FLAGS (\\Deleted)").await;
    a.cmd("a7 EXPUNGE").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = b.cmd("b4 FETCH 1:* (UID)").await;
    assert!(!r.iter().any(|l| l.contains("EXPUNGE")), "{r:?}");
    let r = noop_until(&mut b, "EXPUNGE").await;
    assert_eq!(r[0], "* 1 EXPUNGE");
    server.stop().await;
}

#[tokio::test]
async fn bad_input_is_answered() {
    let limits = ImapLimits {
        max_message_bytes: 10_000,
        max_line: 2_000,
        ..ImapLimits::default()
    };
    let server = Server::start(limits).await;
    let mut c = server.client().await;
    // before login
    for cmd in [
        "SELECT INBOX",
        "FETCH 1 BODY[]",
        "LIST \"\" *",
        "APPEND INBOX {3+}\r\nabc",
    ] {
        let r = c.cmd(&format!("t1 {cmd}")).await;
        assert_eq!(r, vec!["t1 BAD log in first"], "{cmd}");
    }
    // unknown commands, wrong tags, garbage
    assert_eq!(
        c.cmd("t2 FROBNICATE").await,
        vec!["t2 BAD unknown command or syntax error"]
    );
    c.send(b"NOOP\r\n").await;
    assert_eq!(c.line().await, "* BAD unknown command or syntax error");
    c.send(b"+ NOOP\r\n").await;
    assert_eq!(c.line().await, "* BAD unknown command or syntax error");
    c.send(b"\r\n").await;
    assert_eq!(c.line().await, "* BAD unknown command or syntax error");
    c.send(b"\x00\xff\xfe\x80 \x01\r\n").await;
    assert_eq!(c.line().await, "* BAD unknown command or syntax error");
    assert_eq!(c.cmd("t3 NOOP").await, vec!["t3 OK NOOP completed"]);
    // a line too long
    let long = format!("t4 NOOP {}\r\n", "x".repeat(5_000));
    c.send(long.as_bytes()).await;
    assert_eq!(c.line().await, "t4 BAD command line too long");
    // huge literals: refused before sending (sync)...
    let r = c.cmd("t5 LOGIN {99999999}").await;
    assert_eq!(r, vec!["t5 NO [TOOBIG] literal too big"]);
    assert_eq!(c.cmd("t6 NOOP").await, vec!["t6 OK NOOP completed"]);
    // ... an unbalanced literal swallows what follows, then the command fails
    c.send(b"t7 LOGIN {16}\r\n").await;
    assert_eq!(c.line().await, "+ ready for literal data");
    c.send(b"alice\r\nt8 NOOP\r\n").await;
    c.send(b"\r\n").await;
    let r = c.until("t7").await;
    assert!(r.last().unwrap().starts_with("t7 BAD"), "{r:?}");
    assert_eq!(c.cmd("t9 NOOP").await, vec!["t9 OK NOOP completed"]);
    // the wrong password: NO each time, then BYE
    for i in 1..=5 {
        let r = c.cmd(&format!("p{i} LOGIN {USER} wrong")).await;
        assert_eq!(
            r.last().unwrap(),
            &format!("p{i} NO [AUTHENTICATIONFAILED] authentication failed")
        );
    }
    assert_eq!(c.line().await, "* BYE too many failed logins");
    assert!(c.closed().await);
    // a huge non-synchronizing literal closes the connection
    let mut c = server.client().await;
    c.send(b"h1 APPEND INBOX {99999999+}\r\nxxxx").await;
    assert_eq!(c.line().await, "h1 BAD [TOOBIG] literal too big");
    assert_eq!(c.line().await, "* BYE literal too big, closing");
    assert!(c.closed().await);
    // APPEND over the configured size; BAD in IDLE; AUTHENTICATE
    let mut c = server.client().await;
    let plain = base64_encode(format!("\0{USER}\0{PASSWORD}").as_bytes());
    let r = c.cmd(&format!("a1 AUTHENTICATE PLAIN {plain}")).await;
    assert!(r.last().unwrap().starts_with("a1 OK [CAPABILITY"), "{r:?}");
    assert_eq!(
        c.cmd("a2 APPEND INBOX {10001}").await,
        vec!["a2 NO [TOOBIG] literal too big"]
    );
    assert_eq!(
        c.cmd("a3 FETCH 1 FLAGS").await,
        vec!["a3 BAD no mailbox selected"]
    );
    c.cmd("a4 SELECT INBOX").await;
    assert_eq!(
        c.cmd("a5 FETCH 9 FLAGS").await,
        vec!["a5 BAD no such message (sequence number past the end)"]
    );
    assert_eq!(
        c.cmd("a6 UID FETCH 9 FLAGS").await,
        vec!["a6 OK UID FETCH completed"]
    );
    assert_eq!(
        c.cmd("a7 FETCH 1 BINARY[1]").await,
        vec!["a7 BAD BINARY is not supported"]
    );
    assert_eq!(
        c.cmd("a8 SELECT Nowhere").await,
        vec!["a8 NO [NONEXISTENT] no such mailbox"]
    );
    assert_eq!(
        c.cmd("a9 SEARCH CHARSET KOI8-R ALL").await,
        vec!["a9 BAD no mailbox selected"]
    );
    c.cmd("b1 SELECT INBOX").await;
    let r = c.cmd("b2 SEARCH CHARSET KOI8-R ALL").await;
    assert!(r[0].starts_with("b2 NO [BADCHARSET"), "{r:?}");
    c.send(b"b3 IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling");
    c.send(b"NOT DONE\r\n").await;
    assert_eq!(c.line().await, "b3 BAD expected DONE");
    assert_eq!(c.cmd("b4 NOOP").await, vec!["b4 OK NOOP completed"]);
    assert_eq!(c.cmd("b5 LOGOUT").await[0], "* BYE pecbox logging out");
    assert!(c.closed().await);
    // a line that never ends is cut off before it fills the memory
    let mut c = server.client().await;
    c.send(format!("e1 NOOP {}", "y".repeat(10_000)).as_bytes())
        .await;
    assert_eq!(c.line().await, "* BYE command line too long, closing");
    assert!(c.closed().await);
    // AUTHENTICATE LOGIN, step by step, and a cancelled PLAIN
    let mut c = server.client().await;
    c.send(b"c1 AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+");
    c.send(b"*\r\n").await;
    assert_eq!(c.line().await, "c1 BAD authentication cancelled");
    c.send(b"c2 AUTHENTICATE LOGIN\r\n").await;
    assert_eq!(c.line().await, "+ VXNlcm5hbWU6");
    c.send(format!("{}\r\n", base64_encode(USER.as_bytes())).as_bytes())
        .await;
    assert_eq!(c.line().await, "+ UGFzc3dvcmQ6");
    c.send(format!("{}\r\n", base64_encode(PASSWORD.as_bytes())).as_bytes())
        .await;
    assert!(c.line().await.starts_with("c2 OK [CAPABILITY"));
    server.stop().await;
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[tokio::test]
async fn idle_timeout_and_shutdown() {
    let limits = ImapLimits {
        idle_timeout: Duration::from_millis(300),
        idle_command_timeout: Duration::from_millis(900),
        ..ImapLimits::default()
    };
    let server = Server::start(limits).await;
    let mut c = server.client().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.line().await, "* BYE autologout: idle for too long");
    assert!(c.closed().await);
    // a command that never ends is no way around the timer, nor half a literal
    let mut c = server.client().await;
    c.send(b"x1 NOOP").await;
    assert_eq!(c.line().await, "* BYE autologout: idle for too long");
    let mut c = server.client().await;
    c.send(b"x2 LOGIN {10+}\r\nabc").await;
    assert_eq!(c.line().await, "* BYE autologout: idle for too long");
    // under IDLE the timeout is longer
    let mut c = server.client().await;
    c.login().await;
    c.send(b"i1 IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling");
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.send(b"DONE\r\n").await;
    assert_eq!(c.line().await, "i1 OK IDLE terminated");
    // shutdown says BYE
    let mut c = server.client().await;
    server.stop.send(true).unwrap();
    assert_eq!(c.line().await, "* BYE server shutting down");
    assert!(c.closed().await);
    tokio::time::timeout(Duration::from_secs(10), server.task)
        .await
        .expect("serve returns")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_session_takes_down_nothing_else() {
    let server = Server::start(ImapLimits::default()).await;
    let mut other = server.client().await;
    other.login().await;
    let mut bad = server.client().await;
    bad.send(b"x LOGIN boom secret\r\n").await;
    assert!(bad.closed().await, "the panicking session was closed");
    let r = other.cmd("a SELECT INBOX").await;
    assert!(r.last().unwrap().starts_with("a OK"), "{r:?}");
    let mut next = server.client().await;
    next.login().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uid_commands_and_the_rest() {
    let server = Server::start(ImapLimits::default()).await;
    let mut c = server.client().await;
    c.login().await;
    assert_eq!(
        c.cmd("a ENABLE CONDSTORE").await,
        vec!["* ENABLED", "a OK ENABLE completed"]
    );
    // EXAMINE: reading does not set \Seen
    c.cmd("b EXAMINE INBOX").await;
    let r = c.cmd("c FETCH 2 (BODY[TEXT] FLAGS)").await;
    assert_eq!(r[0], "* 2 FETCH (BODY[TEXT] {13}");
    assert_eq!(r[1], "Hello Alice");
    assert_eq!(r[2], " FLAGS ())");
    assert!(c.cmd("d STORE 2 +FLAGS (\\Seen)").await[0].starts_with("d NO [READ-ONLY]"));
    c.cmd("e SELECT INBOX").await;
    let r = c.cmd("f UID FETCH 2 (RFC822.TEXT BODY[]<0.4>)").await;
    assert_eq!(r[0], "* 2 FETCH (UID 2 RFC822.TEXT {13}");
    assert_eq!(r[2], " BODY[]<0> {4}");
    assert_eq!(r[3], "From FLAGS (\\Seen))");
    let r = c.cmd("g UID STORE 1:3 +FLAGS (\\Deleted)").await;
    assert_eq!(r.len(), 4, "{r:?}");
    assert!(
        r[0].starts_with("* 1 FETCH (FLAGS (\\Deleted) UID 1)"),
        "{r:?}"
    );
    let r = c.cmd("h UID COPY 3 Archive").await;
    assert!(r[0].starts_with("h OK [COPYUID "), "{r:?}");
    assert!(r[0].ends_with(" 3 1] UID COPY completed"), "{r:?}");
    // UID EXPUNGE takes only the named \Deleted messages
    assert_eq!(
        c.cmd("i UID EXPUNGE 2").await,
        vec!["* 2 EXPUNGE", "i OK EXPUNGE completed"]
    );
    assert_eq!(c.cmd("j CHECK").await, vec!["j OK CHECK completed"]);
    let r = c.cmd("k STATUS INBOX (MESSAGES UNSEEN UIDNEXT)").await;
    assert_eq!(r[0], "* STATUS INBOX (MESSAGES 2 UNSEEN 2 UIDNEXT 4)");
    // CLOSE expunges silently
    assert_eq!(c.cmd("l CLOSE").await, vec!["l OK CLOSE completed"]);
    assert!(server.store.list(USER, INBOX).unwrap().is_empty());
    assert_eq!(
        c.cmd("m NAMESPACE").await,
        vec![
            "* NAMESPACE ((\"\" \"/\")) NIL NIL",
            "m OK NAMESPACE completed"
        ]
    );
    let r = c.cmd("n LSUB \"\" \"A*\"").await;
    assert_eq!(r[0], "* LSUB (\\HasNoChildren \\Archive) \"/\" Archive");
    let r = c.cmd("o LIST \"\" \"\"").await;
    assert_eq!(r[0], "* LIST (\\Noselect) \"/\" \"\"");
    let r = c.cmd("p CREATE INBOX").await;
    assert!(r[0].starts_with("p NO [ALREADYEXISTS]"), "{r:?}");
    let r = c.cmd("q RENAME Nowhere Elsewhere").await;
    assert!(r[0].starts_with("q NO [NONEXISTENT]"), "{r:?}");
    let r = c.cmd("r DELETE Sent").await;
    assert!(r[0].starts_with("r NO [CANNOT]"), "{r:?}");
    server.stop().await;
}
