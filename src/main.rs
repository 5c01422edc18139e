use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use pecbox::cli::{manage, verify};
use pecbox::config::Config;
use pecbox::provider::admin::{parse_size, AdminRequest};
use pecbox::store::OrdinaryMailPolicy;

/// pecbox: a complete Italian PEC provider in one binary.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Factory configuration file (default: $PECBOX_CONFIG, /etc/pecbox/pecbox.toml, or
    /// the demo); <data_dir>/pecbox.toml, when it exists, overrides it key by key.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the provider: every listener of the configuration.
    Run,
    /// Create the data folder, the provider CA and the signing and TLS certificates.
    Init,
    /// Manage PEC mailboxes.
    #[command(subcommand)]
    Mailbox(MailboxCommand),
    /// The providers' index (indice dei gestori).
    #[command(subcommand)]
    Index(IndexCommand),
    /// The registro dei log: search, timelines, kept receipts, export, checks, rotation.
    #[command(subcommand)]
    Log(pecbox::cli::log::LogCommand),
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
    /// Signed A/B system updates through RAUC (docs/updates.md).
    #[command(subcommand)]
    Update(pecbox::cli::update::UpdateCommand),
    /// The configuration: factory layer and the panel's override below data_dir.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the configuration in effect, each value with where it comes from.
    Show,
}

#[derive(Subcommand)]
enum MailboxCommand {
    /// Create a mailbox; without --password-stdin a strong password is printed once.
    Add {
        address: String,
        #[arg(long)]
        password_stdin: bool,
        /// e.g. 500M, 2G
        #[arg(long, value_parser = parse_size)]
        quota: Option<u64>,
    },
    List,
    /// Change a password (read from standard input).
    Passwd {
        address: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    Remove {
        address: String,
    },
    /// What to do with ordinary (non-PEC) mail: refuse, anomalia, or forward:ADDRESS.
    Policy {
        address: String,
        #[arg(value_parser = parse_policy)]
        policy: OrdinaryMailPolicy,
    },
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Print this provider's entry as LDIF.
    #[command(name = "self")]
    Own,
    /// Load entries from an LDIF file (or a signed .p7m LDIF).
    Import {
        file: PathBuf,
        /// Trust anchors for a signed .p7m (PEM; repeatable).
        #[arg(long = "ca", value_name = "PEM")]
        ca: Vec<PathBuf>,
    },
    List,
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2018-11-13T16:39:27+01:00"))
}

fn parse_policy(s: &str) -> Result<OrdinaryMailPolicy, String> {
    match s {
        "refuse" => Ok(OrdinaryMailPolicy::Refuse),
        "anomalia" => Ok(OrdinaryMailPolicy::Anomalia),
        _ => match s.strip_prefix("forward:") {
            Some(to) if to.contains('@') => Ok(OrdinaryMailPolicy::Forward(to.to_string())),
            _ => Err("one of: refuse, anomalia, forward:ADDRESS".into()),
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Verify {
            files,
            json,
            ca,
            at,
        } => run_verify(cli.config.as_deref(), &files, json, &ca, at),
        Command::Update(update) => pecbox::cli::update::run(update),
        command => match Config::locate(cli.config.as_deref()) {
            Ok(config) => dispatch(config, command),
            Err(e) => {
                eprintln!("pecbox: {e}");
                2
            }
        },
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn dispatch(config: Config, command: Command) -> i32 {
    let fail = |e: String| {
        eprintln!("pecbox: {e}");
        1
    };
    match command {
        Command::Run => {
            pecbox::daemon::init_logging();
            match pecbox::daemon::run(config) {
                Ok(()) => 0,
                Err(e) => fail(e.to_string()),
            }
        }
        Command::Init => match pecbox::provider::identity::init(&config) {
            Ok(created) if created.is_empty() => {
                println!(
                    "nothing to create: {} is complete",
                    config.data_dir().display()
                );
                0
            }
            Ok(created) => {
                for line in created {
                    println!("created {line}");
                }
                0
            }
            Err(e) => fail(e.to_string()),
        },
        Command::Mailbox(m) => {
            let request = match m {
                MailboxCommand::Add {
                    address,
                    password_stdin,
                    quota,
                } => {
                    let password = if password_stdin {
                        match manage::password_from_stdin() {
                            Ok(p) => Some(p),
                            Err(e) => return fail(e),
                        }
                    } else {
                        None
                    };
                    AdminRequest::MailboxAdd {
                        address,
                        password,
                        quota,
                    }
                }
                MailboxCommand::List => AdminRequest::MailboxList,
                MailboxCommand::Passwd { address, .. } => match manage::password_from_stdin() {
                    Ok(password) => AdminRequest::MailboxPasswd { address, password },
                    Err(e) => return fail(e),
                },
                MailboxCommand::Remove { address } => AdminRequest::MailboxRemove { address },
                MailboxCommand::Policy { address, policy } => {
                    AdminRequest::MailboxPolicy { address, policy }
                }
            };
            manage::run(&config, request)
        }
        Command::Index(IndexCommand::Own) => match pecbox::provider::identity::load(&config) {
            Ok(identity) => {
                let entry = pecbox::provider::index::self_entry(
                    &config.provider.name,
                    &config.provider.domains,
                    &config.service_address(),
                    identity.signer.certificate_der(),
                );
                print!("{}", pecbox::provider::index::entry_to_ldif(&entry));
                0
            }
            Err(e) => fail(e.to_string()),
        },
        Command::Index(IndexCommand::Import { file, ca }) => {
            let contents = match manage::read_file(&file) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let anchors = match verify::load_anchors(&ca) {
                Ok(a) => a,
                Err(e) => return fail(e),
            };
            manage::run(&config, AdminRequest::IndexImport { contents, anchors })
        }
        Command::Index(IndexCommand::List) => manage::run(&config, AdminRequest::IndexList),
        Command::Log(log) => pecbox::cli::log::run(&config, log),
        Command::Config(ConfigCommand::Show) => {
            print!("{}", pecbox::cli::config::show(&config));
            0
        }
        Command::Verify { .. } | Command::Update(_) => 2,
    }
}

fn run_verify(
    config: Option<&std::path::Path>,
    files: &[PathBuf],
    json: bool,
    ca: &[PathBuf],
    at: Option<DateTime<Utc>>,
) -> i32 {
    let anchor_files = if ca.is_empty() {
        default_anchor_files(config)
    } else {
        ca.to_vec()
    };
    let anchors = match verify::load_anchors(&anchor_files) {
        Ok(anchors) => anchors,
        Err(e) => {
            eprintln!("pecbox verify: {e}");
            return 2;
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
    worst.exit_code()
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
