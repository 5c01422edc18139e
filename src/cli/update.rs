//! `pecbox update`: signed A/B updates through RAUC (docs/updates.md).
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Subcommand;

use crate::update::{precheck, running_version, Rauc, UpdateError};

#[derive(Subcommand)]
pub enum UpdateCommand {
    /// Install a signed RAUC bundle (.raucb) into the other root slot; reboot to use it.
    ///
    /// Refused before anything is written when the signature is not trusted, the bundle
    /// is for another board, or its version is not newer than the running one.
    Install {
        /// The bundle file.
        file: PathBuf,
    },
    /// The root slots: versions, booted slot, good/bad marks.
    Status {
        /// RAUC's own JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// Exit codes: 0 done, 1 refused or failed, 2 RAUC could not be run.
pub fn run(command: UpdateCommand) -> i32 {
    let rauc = Rauc::from_env();
    match command {
        UpdateCommand::Install { file } => install(&rauc, &file),
        UpdateCommand::Status { json } => status(&rauc, json),
    }
}

fn code(e: &UpdateError) -> i32 {
    match e {
        UpdateError::Spawn(..) => 2,
        _ => 1,
    }
}

fn install(rauc: &Rauc, file: &std::path::Path) -> i32 {
    let running = running_version();
    let info = match precheck(rauc, file, &running) {
        Ok(info) => info,
        Err(e) => {
            eprintln!("pecbox update: {e}");
            return code(&e);
        }
    };
    eprintln!(
        "pecbox update: bundle {} for {} (running {running}): signature trusted; installing",
        info.version, info.compatible
    );
    let result = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(100);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos:>3}% {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let r = rauc.install(
            file,
            |pct, msg| {
                bar.set_position(u64::from(pct));
                bar.set_message(msg.to_string());
            },
            |line| bar.println(line),
        );
        match &r {
            Ok(()) => bar.finish(),
            Err(_) => bar.abandon(),
        }
        r
    } else {
        rauc.install(
            file,
            |pct, msg| eprintln!("{pct:>3}% {msg}"),
            |line| eprintln!("rauc: {line}"),
        )
    };
    match result {
        Ok(()) => {
            println!(
                "installed {} into the inactive slot; reboot to run it \
                 (it is kept only if pecbox marks it good after the boot)",
                info.version
            );
            0
        }
        Err(e) => {
            eprintln!("pecbox update: {e}; the running slot is unchanged");
            code(&e)
        }
    }
}

fn status(rauc: &Rauc, json: bool) -> i32 {
    let result = if json {
        rauc.status_json().map(|raw| println!("{raw}"))
    } else {
        rauc.status()
            .map(|s| print!("{}", s.render(&running_version())))
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pecbox update status: {e}");
            code(&e)
        }
    }
}
