//! The PEC message model (pec-rules.md): daticert.xml, the eleven provider-generated
//! messages, the breve-receipt hashing and the classifier. Pure: no I/O, no clock,
//! no signing (see `crate::smime`).
pub mod breve;
pub mod classify;
pub mod daticert;
pub mod headers;
pub mod kind;
pub mod messages;
pub mod mime;
pub mod original;
pub mod parse;
pub mod timestamp;
