//! A pecbox provider as a child process for end-to-end tests: its own folder, config and
//! free ports on 127.0.0.1, started and stopped like the real daemon, driven with the
//! Python clients in `clients.py`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "password-di-prova";

pub struct Ports {
    pub smtp: u16,
    pub submissions: u16,
    pub submission: u16,
    pub pop3s: u16,
}

pub struct PecBox {
    pub name: String,
    pub domain: String,
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    child: Option<Child>,
    stdout: Option<std::sync::mpsc::Receiver<String>>,
    extra: String,
    memory: Option<MemoryCage>,
    /// The configuration file: `dir/pecbox.toml`, or `dir/<folder>/pecbox.toml` after
    /// [`PecBox::relocate_config`].
    config: PathBuf,
    /// A command every pecbox run of this box goes through (see [`PecBox::wrap`]).
    wrapper: Vec<std::ffi::OsString>,
}

/// The memory a daemon may use in the tests, as the appliance's unit would bound it:
/// `PECBOX_TEST_MEMORY_MAX` (bytes, or with K/M/G), default 256M, `off` for none.
const DEFAULT_TEST_MEMORY_MAX: &str = "256M";

/// A memory cgroup (v1 here, v2 where that is what is mounted) holding one daemon,
/// so a test fails when the daemon would be killed on a small box.
pub struct MemoryCage {
    dir: PathBuf,
    limit: u64,
}

impl MemoryCage {
    fn limit_from_env() -> Option<u64> {
        let text = std::env::var("PECBOX_TEST_MEMORY_MAX")
            .unwrap_or_else(|_| DEFAULT_TEST_MEMORY_MAX.into());
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return None;
        }
        let (num, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
        let n: u64 = num.parse().ok()?;
        Some(match unit.to_ascii_uppercase().as_str() {
            "" => n,
            "K" => n << 10,
            "M" => n << 20,
            "G" => n << 30,
            _ => return None,
        })
    }

    /// Puts `pid` in a fresh cgroup limited to the configured bytes; None (with a note
    /// on stderr) where this machine gives no writable memory controller.
    fn enclose(pid: u32, name: &str) -> Option<Self> {
        let limit = Self::limit_from_env()?;
        let tag = format!("pecbox-test-{}-{pid}", name.replace(' ', "-"));
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let v2 = Path::new("/sys/fs/cgroup");
        let (dir, limit_file) = if v1.join("memory.limit_in_bytes").exists() {
            (v1.join(&tag), "memory.limit_in_bytes")
        } else if v2.join("cgroup.controllers").exists() {
            (v2.join(&tag), "memory.max")
        } else {
            eprintln!("note: no memory cgroup here; {name} runs without a memory bound");
            return None;
        };
        let made = std::fs::create_dir(&dir)
            .and_then(|_| std::fs::write(dir.join(limit_file), limit.to_string()))
            .and_then(|_| std::fs::write(dir.join("cgroup.procs"), pid.to_string()));
        if let Err(e) = made {
            eprintln!(
                "note: cannot bound {name}'s memory ({}): {e}",
                dir.display()
            );
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Self { dir, limit })
    }

    /// How many times the kernel killed a process of the cage for lack of memory.
    fn oom_kills(&self) -> u64 {
        let v1 = std::fs::read_to_string(self.dir.join("memory.oom_control"));
        let v2 = std::fs::read_to_string(self.dir.join("memory.events"));
        v1.or(v2)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for MemoryCage {
    fn drop(&mut self) {
        // the daemon is gone by now; an empty cgroup can be removed
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Ports from a per-process sequence (tests of one binary run in parallel threads and
/// must never pick the same port), skipping any already taken. Below 32768, the start
/// of Linux's ephemeral range: a port free now cannot be taken meanwhile by some
/// process's outgoing connection.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        (std::process::id() % 240) as u16 * 50,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn pecbox() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pecbox"));
    cmd.env_remove("PECBOX_CONFIG").env_remove("NOTIFY_SOCKET");
    cmd
}

pub fn clients_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/clients.py")
}

impl PecBox {
    /// A provider `name` for `domain`; `extra` is appended to `[delivery]`.
    pub fn new(name: &str, domain: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("pecbox.toml");
        let b = Self {
            name: name.to_string(),
            domain: domain.to_string(),
            dir,
            ports: Ports {
                smtp: free_port(),
                submissions: free_port(),
                submission: free_port(),
                pop3s: free_port(),
            },
            child: None,
            stdout: None,
            extra: extra.to_string(),
            memory: None,
            config,
            wrapper: Vec::new(),
        };
        b.write_config(&[]);
        b
    }

    pub fn config_path(&self) -> PathBuf {
        self.config.clone()
    }

    /// Moves the configuration into `dir/<folder>/pecbox.toml` (one level down), its
    /// data folder staying `dir/data` (`data_dir = "../data"`): the factory file in a
    /// folder of its own, apart from the data folder, as on the appliance.
    pub fn relocate_config(&mut self, folder: &str) {
        let to = self.dir.path().join(folder);
        std::fs::create_dir_all(&to).expect("config folder");
        let text = std::fs::read_to_string(&self.config).expect("config");
        std::fs::remove_file(&self.config).expect("config");
        self.config = to.join("pecbox.toml");
        std::fs::write(
            &self.config,
            text.replacen("data_dir = \"data\"", "data_dir = \"../data\"", 1),
        )
        .expect("config");
    }

    /// Runs every later pecbox command of this box (`run` included) as
    /// `argv… pecbox --config FILE …`: e.g. in a mount namespace of its own.
    pub fn wrap(&mut self, argv: &[&std::ffi::OsStr]) {
        self.wrapper = argv.iter().map(|a| a.to_os_string()).collect();
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("data/certs/ca.pem")
    }

    /// Routes to other providers: (domain, smtp port, their CA file).
    pub fn write_config(&self, peers: &[(&str, u16, PathBuf)]) {
        let routes: Vec<String> = peers
            .iter()
            .map(|(d, port, _)| format!("\"{d}\" = \"localhost:{port}\""))
            .collect();
        let cas: Vec<String> = peers
            .iter()
            .map(|(_, _, ca)| format!("\"{}\"", ca.display()))
            .collect();
        let data_dir = if self.config.parent() == Some(self.dir.path()) {
            "data"
        } else {
            "../data"
        };
        let config = format!(
            "[provider]\nname = \"{}\"\ndomains = [\"{}\"]\nhostname = \"localhost\"\n\n\
             [storage]\ndata_dir = \"{data_dir}\"\n\n\
             [listen]\nsmtp = \"127.0.0.1:{}\"\nsubmissions = \"127.0.0.1:{}\"\nsubmission = \"127.0.0.1:{}\"\npop3s = \"127.0.0.1:{}\"\n\n\
             [delivery]\nroutes = {{ {} }}\ntls_ca = [{}]\n{}\n",
            self.name,
            self.domain,
            self.ports.smtp,
            self.ports.submissions,
            self.ports.submission,
            self.ports.pop3s,
            routes.join(", "),
            cas.join(", "),
            self.extra,
        );
        std::fs::write(self.config_path(), config).expect("config");
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = match self.wrapper.split_first() {
            None => pecbox(),
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args)
                    .arg(env!("CARGO_BIN_EXE_pecbox"))
                    .env_remove("PECBOX_CONFIG")
                    .env_remove("NOTIFY_SOCKET");
                cmd
            }
        };
        cmd.arg("--config").arg(self.config_path());
        cmd
    }

    /// Runs a management command, returns stdout; panics with its stderr on failure.
    pub fn run_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut cmd = self.cmd();
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("pecbox runs");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "pecbox {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn init(&self) {
        self.run_ok(&["init"], None);
    }

    pub fn add_mailbox(&self, local: &str) -> String {
        let address = format!("{local}@{}", self.domain);
        self.run_ok(
            &["mailbox", "add", &address, "--password-stdin"],
            Some(&format!("{PASSWORD}\n")),
        );
        address
    }

    pub fn index_self(&self) -> String {
        self.run_ok(&["index", "self"], None)
    }

    pub fn import_index(&self, ldif: &str) {
        let file = self.dir.path().join("peer.ldif");
        std::fs::write(&file, ldif).unwrap();
        self.run_ok(&["index", "import", file.to_str().unwrap()], None);
    }

    /// Starts the daemon and waits for its `ready:` line.
    pub fn start(&mut self) {
        let mut child = self
            .cmd()
            .arg("run")
            .env("PECBOX_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pecbox run");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let name = self.name.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let log = self.dir.path().join("daemon.log");
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(file, "[{name}] {line}");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.starts_with("ready:") => break,
                Ok(_) => {}
                Err(_) if Instant::now() > deadline => panic!("{} did not become ready", self.name),
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("{} exited early: {status}; log:\n{}", self.name, self.log());
                    }
                }
            }
        }
        self.memory = MemoryCage::enclose(child.id(), &self.name);
        self.child = Some(child);
        self.stdout = Some(rx);
    }

    /// The running daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Adds IMAPS and panel listeners on free ports; returns (imaps, panel) ports.
    pub fn enable_imaps_and_panel(&self) -> (u16, u16) {
        let (imaps, panel) = (free_port(), free_port());
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).expect("config");
        let text = text.replacen(
            "[listen]\n",
            &format!("[listen]\nimaps = \"127.0.0.1:{imaps}\"\npanel = \"127.0.0.1:{panel}\"\n"),
            1,
        );
        std::fs::write(&path, text).expect("config");
        (imaps, panel)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Panics if the kernel killed the daemon for want of memory.
    fn check_memory(&mut self) {
        if let Some(cage) = self.memory.take() {
            let kills = cage.oom_kills();
            assert_eq!(
                kills,
                0,
                "{} was killed for lack of memory under a {} MB bound",
                self.name,
                cage.limit >> 20
            );
        }
    }

    /// SIGTERM and wait: returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.check_memory_alive();
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(&mut self) {
        self.check_memory_alive();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.memory = None;
    }

    fn check_memory_alive(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if self.memory.as_ref().is_some_and(|c| c.oom_kills() > 0) {
            self.check_memory();
        }
    }

    /// Sends through the punto di accesso with Python's smtplib; returns (ok, output).
    pub fn send(&self, user: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new("python3")
            .arg(clients_py())
            .args(["send", "--port", &self.ports.submissions.to_string()])
            .args(["--ca", self.ca_path().to_str().unwrap()])
            .args(["--user", user, "--password", PASSWORD])
            .args(args)
            .output()
            .expect("python3");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Every message of `user`'s mailbox over POP3S (Python's poplib), without deleting.
    pub fn fetch(&self, user: &str) -> Vec<Vec<u8>> {
        let out_dir = tempfile::tempdir().unwrap();
        let out = Command::new("python3")
            .arg(clients_py())
            .args(["fetch", "--port", &self.ports.pop3s.to_string()])
            .args(["--ca", self.ca_path().to_str().unwrap()])
            .args(["--user", user, "--password", PASSWORD])
            .args(["--out", out_dir.path().to_str().unwrap()])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "fetch {user}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut files: Vec<PathBuf> = std::fs::read_dir(out_dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    }

    /// How many messages `user` has (POP3 STAT).
    pub fn count(&self, user: &str) -> usize {
        let out = Command::new("python3")
            .arg(clients_py())
            .args(["stat", "--port", &self.ports.pop3s.to_string()])
            .args(["--ca", self.ca_path().to_str().unwrap()])
            .args(["--user", user, "--password", PASSWORD])
            .output()
            .expect("python3");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Waits until `user` has `count` messages (or `timeout` passes); returns them.
    pub fn wait_for(&self, user: &str, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.fetch(user);
            if messages.len() >= count || Instant::now() > deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for PecBox {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Two providers that know each other: alfa (pec.alfa.test) and beta (pec.beta.test).
pub fn two_providers(extra: &str) -> (PecBox, PecBox) {
    let alfa = PecBox::new("Alfa PEC", "pec.alfa.test", extra);
    let beta = PecBox::new("Beta PEC", "pec.beta.test", extra);
    alfa.init();
    beta.init();
    alfa.write_config(&[("pec.beta.test", beta.ports.smtp, beta.ca_path())]);
    beta.write_config(&[("pec.alfa.test", alfa.ports.smtp, alfa.ca_path())]);
    alfa.import_index(&beta.index_self());
    beta.import_index(&alfa.index_self());
    (alfa, beta)
}

/// The X- and Subject headers of a message, for quick checks.
pub fn header(message: &[u8], name: &str) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse(message)?;
    parsed
        .headers()
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .and_then(|h| h.value.as_text().map(str::to_string))
}

pub fn subject(message: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(message)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

/// A process's resident memory now (`VmRSS`), or its peak so far (`VmHWM`), in bytes.
pub fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

pub fn rss(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmRSS:")
}

/// The highest RSS of a process seen until [`PeakRss::peak`], sampled every 10 ms.
pub struct PeakRss {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    pub fn watch(pid: u32) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !s.load(Ordering::Relaxed) {
                peak = peak.max(rss(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        Self { stop, handle }
    }

    pub fn peak(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

/// One AUTH PLAIN on an implicit-TLS submission port from the loopback address `from`:
/// the reply's last line and how long the server took to give it.
pub async fn smtp_auth(
    port: u16,
    tls: &tokio_rustls::TlsConnector,
    from: std::net::IpAddr,
    user: &str,
    password: &str,
) -> (String, Duration) {
    use base64::Engine;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    async fn reply<R: tokio::io::AsyncBufRead + Unpin>(s: &mut R) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                return line;
            }
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return line;
            }
        }
    }
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
    let tcp = socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = tokio::io::BufReader::new(tls.connect(name, tcp).await.unwrap());
    assert!(reply(&mut s).await.starts_with("220"));
    s.get_mut().write_all(b"EHLO tester\r\n").await.unwrap();
    assert!(reply(&mut s).await.starts_with("250"));
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    s.get_mut()
        .write_all(format!("AUTH PLAIN {creds}\r\n").as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let line = reply(&mut s).await;
    (line, started.elapsed())
}

/// A TLS client trusting `ca` (a PEM file).
pub fn tls_connector(ca: &Path) -> tokio_rustls::TlsConnector {
    let pem = std::fs::read_to_string(ca).expect("CA file");
    tokio_rustls::TlsConnector::from(pecbox::tls::client_config(&[pem], false).expect("CA"))
}

/// A number from the environment (a benchmark's size), or `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl PecBox {
    /// Submits `n` certified messages from `user` to `to` over one SMTPS session
    /// (tests/support/load.py); panics when the load generator fails.
    pub fn submit_load(&self, user: &str, to: &str, n: usize) {
        let load = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/load.py"))
            .arg(self.ports.submissions.to_string())
            .arg(self.ca_path())
            .args([user, PASSWORD, to, &n.to_string()])
            .output()
            .expect("python3");
        assert!(
            load.status.success(),
            "{}",
            String::from_utf8_lossy(&load.stderr)
        );
    }
}
