//! The CIB's `<resources>` (`cibadmin --query`), as clevervm reads its VMs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The parsers take text: lossy decoding lets every byte sequence reach them.
    let text = String::from_utf8_lossy(data);
    let _ = clever_pacemaker::parse_resources(&text);
});
