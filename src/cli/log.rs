//! `pecbox log …`: the registro dei log from the command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use clap::Subcommand;

use crate::config::Config;
use crate::provider::admin::{AdminRequest, AdminResponse, LogRequest};
use crate::registro::{EventKind, Query, ALL_KINDS};

#[derive(Subcommand)]
pub enum LogCommand {
    /// Find records; every given filter must match.
    Search {
        /// PEC identificativo of the transaction.
        #[arg(long = "id")]
        identificativo: Option<String>,
        #[arg(long)]
        message_id: Option<String>,
        #[arg(long)]
        sender: Option<String>,
        #[arg(long)]
        recipient: Option<String>,
        /// Event kind, e.g. accettazione, consegna-ricevuta, login.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
        #[arg(long, value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// A whole transaction as a timeline.
    Show {
        identificativo: String,
        #[arg(long)]
        json: bool,
    },
    /// Write back a receipt or notice this provider emitted, byte for byte.
    Receipt {
        /// Its Message-ID.
        message_id: String,
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// One month as a self-contained, verifiable file.
    Export {
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Check the hash chain and the signed checkpoints (of the live registro, or of an export).
    Verify {
        file: Option<PathBuf>,
        /// Trust anchors for an export's checkpoint (PEM; repeatable).
        #[arg(long = "ca", value_name = "PEM")]
        ca: Vec<PathBuf>,
    },
    /// Drop the months beyond the retention period (the daemon does it daily).
    Rotate {
        /// Pretend it is this instant (for tests and drills).
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
    },
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{s}: not a date (YYYY-MM-DD) or RFC 3339 time"))
}

pub fn run(config: &Config, command: LogCommand) -> i32 {
    match command {
        LogCommand::Verify {
            file: Some(file),
            ca,
        } => verify_export(&file, &ca),
        LogCommand::Verify { file: None, .. } => {
            print_response(with_spinner("checking the chain", || {
                super::manage::execute(config, AdminRequest::Log(LogRequest::Verify))
            }))
        }
        LogCommand::Search {
            identificativo,
            message_id,
            sender,
            recipient,
            kind,
            since,
            until,
            limit,
            json,
        } => {
            let kind = match kind.map(|k| EventKind::parse(&k).ok_or(k)).transpose() {
                Ok(kind) => kind,
                Err(k) => {
                    eprintln!(
                        "pecbox: unknown kind {k}; one of: {}",
                        ALL_KINDS.map(|k| k.as_str()).join(", ")
                    );
                    return 1;
                }
            };
            let query = Query {
                identificativo,
                message_id,
                sender,
                recipient,
                kind,
                since,
                until,
                limit,
            };
            print_response(super::manage::execute(
                config,
                AdminRequest::Log(LogRequest::Search { query, json }),
            ))
        }
        LogCommand::Show {
            identificativo,
            json,
        } => print_response(super::manage::execute(
            config,
            AdminRequest::Log(LogRequest::Show {
                identificativo,
                json,
            }),
        )),
        LogCommand::Receipt { message_id, out } => write_data(
            super::manage::execute(
                config,
                AdminRequest::Log(LogRequest::Receipt { message_id }),
            ),
            out,
        ),
        LogCommand::Export { month, out } => write_data(
            with_spinner("exporting", || {
                super::manage::execute(config, AdminRequest::Log(LogRequest::Export { month }))
            }),
            out,
        ),
        LogCommand::Rotate { now } => print_response(with_spinner("rotating", || {
            super::manage::execute(config, AdminRequest::Log(LogRequest::Rotate { now }))
        })),
    }
}

fn print_response(response: AdminResponse) -> i32 {
    if response.ok {
        print!("{}", response.text);
        0
    } else {
        eprintln!("pecbox: {}", response.text.trim_end());
        1
    }
}

fn write_data(response: AdminResponse, out: Option<PathBuf>) -> i32 {
    if !response.ok {
        return print_response(response);
    }
    if let Some(file) = &response.file {
        let taken = take_file(file, out.as_deref());
        let _ = std::fs::remove_file(file);
        return match taken {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("pecbox: {e}");
                1
            }
        };
    }
    let bytes = match response
        .data
        .as_deref()
        .map(|d| base64::engine::general_purpose::STANDARD.decode(d))
    {
        Some(Ok(bytes)) => bytes,
        _ => {
            eprintln!("pecbox: the answer carried no data");
            return 1;
        }
    };
    let written = match &out {
        Some(path) => std::fs::write(path, &bytes).map_err(|e| format!("{}: {e}", path.display())),
        None => std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| e.to_string()),
    };
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pecbox: {e}");
            1
        }
    }
}

/// Copies a file the daemon wrote to `out` (or standard output), streaming.
fn take_file(file: &std::path::Path, out: Option<&std::path::Path>) -> Result<(), String> {
    let mut from = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    match out {
        Some(path) => {
            let mut to =
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
            std::io::copy(&mut from, &mut to)
                .and_then(|_| to.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        None => std::io::copy(&mut from, &mut std::io::stdout().lock())
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

/// A spinner on a terminal while `f` runs (through the daemon there is no count to show).
fn with_spinner<T>(message: &'static str, f: impl FnOnce() -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return f();
    }
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    let out = f();
    bar.finish_and_clear();
    out
}

fn verify_export(file: &PathBuf, ca: &[PathBuf]) -> i32 {
    let (opened, len) = match std::fs::File::open(file).and_then(|f| {
        let len = f.metadata()?.len();
        Ok((f, len))
    }) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("pecbox: {}: {e}", file.display());
            return 2;
        }
    };
    let anchors = match super::verify::load_anchors(ca) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pecbox: {e}");
            return 2;
        }
    };
    // Read as a stream: the bar follows the bytes.
    let bar = if std::io::stderr().is_terminal() {
        let style = indicatif::ProgressStyle::with_template(
            "checking the export {bar:30} {bytes}/{total_bytes}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        indicatif::ProgressBar::new(len).with_style(style)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let report = crate::registro::verify_export(bar.wrap_read(opened), &anchors);
    bar.finish_and_clear();
    match report {
        Ok(report) => print_response(crate::provider::registro_admin::verdict(&report)),
        Err(e) => {
            eprintln!("pecbox: {e}");
            2
        }
    }
}
