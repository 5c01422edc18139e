//! User-facing commands: thin adapters over the library.
pub mod manage;
pub mod verify;
