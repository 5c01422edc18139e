//! pecbox: an Italian PEC provider in one binary.
//!
//! Data flows one way: socket → protocol adapter (`smtp`, `pop3`, `imap`, `panel`) →
//! provider core (`provider`: access, reception, delivery, outbound) → `store` (with the
//! `registro` dei log) → outbound. `pec` is the message model (pure, no I/O); `smime`
//! signs and verifies it; `daemon` runs it all; `cli` holds the user-facing commands.
pub mod cli;
pub mod config;
pub mod daemon;
#[doc(hidden)]
pub mod fuzzing;
pub mod imap;
pub mod listener;
pub mod panel;
pub mod pec;
pub mod pop3;
pub mod provider;
pub mod registro;
pub mod smime;
pub mod smtp;
pub mod store;
pub mod tls;
pub mod update;
