//! The PEC message model (pec-rules.md): daticert.xml, the eleven provider-generated
//! messages, the breve-receipt hashing and the classifier. Pure: no I/O, no clock,
//! no signing (see `crate::smime`).
pub mod daticert;
pub mod timestamp;
