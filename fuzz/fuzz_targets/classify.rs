//! MIME/PEC classification of a whole message (`pec::classify`), and the parsers of the
//! original message the reception and delivery points use.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let c = pecbox::pec::classify::classify(data);
    let _ = c.kind();
    let _ = pecbox::pec::original::OriginalHeaders::parse(data);
    let _ = pecbox::pec::original::rewrite_message_id(data, "opec.fuzz@pec.example", Some("<x@y>"));
});
