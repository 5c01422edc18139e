//! pecbox: an Italian PEC provider in one binary.
//!
//! `pec` is the message model (pure, no I/O); `smime` signs and verifies it;
//! `cli` holds the user-facing commands.
pub mod cli;
pub mod config;
pub mod pec;
pub mod smime;
