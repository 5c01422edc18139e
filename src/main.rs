use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use pecbox::cli::verify;
use pecbox::config::Config;

/// pecbox: a complete Italian PEC provider in one binary.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (default: $PECBOX_CONFIG, /etc/pecbox/pecbox.toml, or the demo).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check PEC messages offline: signature, chain, kind and daticert.xml.
    Verify {
        /// Message files (.eml).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per file, one per line.
        #[arg(long)]
        json: bool,
        /// Trust anchors (PEM; repeatable). Default: this provider's CA.
        #[arg(long = "ca", value_name = "PEM")]
        ca: Vec<PathBuf>,
        /// Check the chain at this instant (RFC 3339). Default: the signing time.
        #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
        at: Option<DateTime<Utc>>,
    },
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2018-11-13T16:39:27+01:00"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify {
            files,
            json,
            ca,
            at,
        } => run_verify(cli.config.as_deref(), &files, json, &ca, at),
    }
}

fn run_verify(
    config: Option<&std::path::Path>,
    files: &[PathBuf],
    json: bool,
    ca: &[PathBuf],
    at: Option<DateTime<Utc>>,
) -> ExitCode {
    let anchor_files = if ca.is_empty() {
        default_anchor_files(config)
    } else {
        ca.to_vec()
    };
    let anchors = match verify::load_anchors(&anchor_files) {
        Ok(anchors) => anchors,
        Err(e) => {
            eprintln!("pecbox verify: {e}");
            return ExitCode::from(2);
        }
    };
    let mut worst = verify::Outcome::Valid;
    for file in files {
        let report = verify::verify_file(file, &anchors, at);
        worst = worst.max(report.outcome);
        if json {
            match serde_json::to_string(&report) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("pecbox verify: {e}"),
            }
        } else {
            print!("{}", verify::render(&report));
        }
    }
    ExitCode::from(worst.exit_code() as u8)
}

/// The provider's own CA when a configuration (or the demo data) provides one.
fn default_anchor_files(config: Option<&std::path::Path>) -> Vec<PathBuf> {
    match Config::locate(config) {
        Ok(c) if c.ca_cert_path().exists() => vec![c.ca_cert_path()],
        Ok(_) => Vec::new(),
        Err(e) => {
            eprintln!("pecbox verify: {e}; checking without the provider's CA");
            Vec::new()
        }
    }
}
