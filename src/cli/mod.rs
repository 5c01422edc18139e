//! User-facing commands.
