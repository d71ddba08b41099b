//! The `<name>` clevervm reads from a libvirt domain XML.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The parsers take text: lossy decoding lets every byte sequence reach them.
    let text = String::from_utf8_lossy(data);
    let _ = clevervm::collect::domain_from_xml(&text);
});
