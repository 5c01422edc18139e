//! `pecbox mailbox …` and `pecbox index import|list`: through control.sock when the
//! daemon runs, else directly on the store.

use std::io::Read;
use std::path::Path;

use crate::config::Config;
use crate::daemon::control;
use crate::provider::admin::{self, AdminRequest, AdminResponse};
use crate::store::Store;

/// Runs `request` in the daemon, or on the store when no daemon runs.
pub fn execute(config: &Config, request: AdminRequest) -> AdminResponse {
    match control::request(&config.control_socket(), &request) {
        Some(Ok(response)) => response,
        Some(Err(e)) => AdminResponse::error(e),
        None => direct(config, request),
    }
}

/// Runs `request` and prints its answer; returns the process exit code.
pub fn run(config: &Config, request: AdminRequest) -> i32 {
    let response = execute(config, request);
    if response.ok {
        print!("{}", response.text);
        0
    } else {
        eprintln!("pecbox: {}", response.text.trim_end());
        1
    }
}

fn direct(config: &Config, request: AdminRequest) -> AdminResponse {
    let dir = config.store_dir();
    if !config.data_dir().exists() {
        return AdminResponse::error(format!(
            "{} does not exist: run `pecbox init` (or `pecbox run`) first",
            config.data_dir().display()
        ));
    }
    // A daemon that just stopped may hold the lock a moment more.
    match Store::open_waiting(&dir, std::time::Duration::from_secs(3)) {
        Ok(store) => admin::execute(&store, config, request),
        Err(e) => AdminResponse::error(format!(
            "{e} (a pecbox daemon may hold the store without answering on {})",
            config.control_socket().display()
        )),
    }
}

/// A password from standard input (first line), for `--password-stdin`.
pub fn password_from_stdin() -> Result<String, String> {
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| format!("reading the password: {e}"))?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(line)
}

pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}
