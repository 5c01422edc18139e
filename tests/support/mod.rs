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
    /// The configuration file: `dir/pecbox.toml`, or `dir/<folder>/pecbox.toml` after
    /// [`PecBox::relocate_config`].
    config: PathBuf,
    /// A command every pecbox run of this box goes through (see [`PecBox::wrap`]).
    wrapper: Vec<std::ffi::OsString>,
}

/// Ports from a per-process sequence (tests of one binary run in parallel threads and
/// must never pick the same port), skipping any already taken.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 400) as u16 * 50,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = if port < 20_000 {
            20_000 + port % 40_000
        } else {
            port
        };
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

    /// SIGTERM and wait: returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
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
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
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
