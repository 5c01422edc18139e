//! Panel test helpers over `tests/support`: a box with the panel listener, and running
//! the Python scripts of `tests/panel/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::PecBox;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Adds `panel = 127.0.0.1:<port>` to the box's configuration; returns the panel URL.
pub fn enable_panel(b: &PecBox) -> String {
    let port = free_port();
    let path = b.config_path();
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text.replacen(
        "[listen]\n",
        &format!("[listen]\npanel = \"127.0.0.1:{port}\"\n"),
        1,
    );
    std::fs::write(&path, text).expect("config");
    format!("https://127.0.0.1:{port}")
}

pub fn data_dir(b: &PecBox) -> PathBuf {
    b.dir.path().join("data")
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/panel")
        .join(name)
}

/// Runs a script of tests/panel with `args`; panics with its output (and the daemons'
/// logs) when it fails.
pub fn run_script(name: &str, args: &[String], boxes: &[&PecBox]) {
    let out = Command::new("python3")
        .arg(script(name))
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let logs: Vec<String> = boxes.iter().map(|b| b.log()).collect();
        panic!(
            "{name} failed ({}):\n{stdout}\n{stderr}\n--- daemon logs ---\n{}",
            out.status,
            logs.join("\n")
        );
    }
    eprintln!("{stdout}");
}
