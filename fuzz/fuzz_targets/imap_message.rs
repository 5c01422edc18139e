//! What IMAP FETCH and SEARCH make of a stored message (`imap::mime`): ENVELOPE,
//! BODY/BODYSTRUCTURE, BODY[section] for a set of sections, header and body text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pecbox::fuzzing::imap_message(data);
});
