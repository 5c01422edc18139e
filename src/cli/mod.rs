//! User-facing commands: thin adapters over the library.
pub mod config;
pub mod log;
pub mod manage;
pub mod update;
pub mod verify;
