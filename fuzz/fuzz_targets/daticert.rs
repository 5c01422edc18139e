//! daticert.xml parsing and its consistency checks; what parses is written back out.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pecbox::pec::daticert::Daticert;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Daticert::parse(data) {
        let _ = d.validate_consistency();
        let _ = d.to_xml();
    }
});
