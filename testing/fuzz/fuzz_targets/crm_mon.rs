//! `crm_mon --output-as=xml`: where Pacemaker says each resource runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The parsers take text: lossy decoding lets every byte sequence reach them.
    let text = String::from_utf8_lossy(data);
    if let Ok(status) = clever_pacemaker::parse_crm_mon(&text) {
        // Exercise the queries the agents and clevervm run on a parsed status.
        for resource in &status.resources {
            let _ = status.running_on(&resource.id, None);
        }
    }
});
