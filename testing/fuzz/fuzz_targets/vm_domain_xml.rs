//! The fields `ocf:clever:vm` reads from a domain XML (its config file, and the copy inside a
//! hibernation image): `<name>` and `<uuid>`. No panic, and what is accepted keeps the promises
//! the agent relies on: the name is safe as a file name and a qemu argument, the UUID is
//! normalised.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(identity) = clever_agent_vm::xml::domain_identity(&text) {
        let name = &identity.name;
        assert!(
            clever_agent_vm::params::check_domain_name(name).is_ok(),
            "{name:?}"
        );
        assert!(!name.contains('/') && name != "." && name != "..");
        assert_eq!(name.trim(), name);
        if let Some(uuid) = &identity.uuid {
            assert_eq!(uuid.len(), 32, "{uuid:?}");
            assert!(uuid
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        }
    }
});
