//! Every declared parameter of `ocf:clever:vm` as arbitrary bytes, through the framework's
//! loader and the agent's typed settings: no panic, and what is accepted keeps the promises the
//! agent relies on before it touches libvirt or the shared filesystem as root.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let declared = clever_agent_vm::DECLARATION.parameters;
    // NUL separates the values (the environment cannot hold a NUL); a missing field is unset.
    let values: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let lookup = |key: &str| {
        let index = declared
            .iter()
            .position(|p| format!("OCF_RESKEY_{}", p.name()) == key)?;
        values
            .get(index)
            .map(|value| OsString::from_vec(value.to_vec()))
    };
    let Ok(parameters) = clever_ocf::Parameters::load(declared, lookup) else {
        return;
    };
    let Ok(settings) = clever_agent_vm::params::Settings::from_parameters(&parameters) else {
        return;
    };
    assert!(settings.config.as_path().is_absolute());
    assert!(settings.hibernate_dir.as_path().is_absolute());
    if let Some(domain) = &settings.domain {
        assert!(clever_agent_vm::params::check_domain_name(domain).is_ok());
    }
    assert!(!settings.uri.chars().any(|c| c.is_control() || c == ' '));
    assert!(settings.shutdown_timeout.as_secs() <= 3600);
    // The monitor's fast path either takes the URI or leaves it to the C library.
    let _ = clever_agent_vm::rpc::target(&settings.uri);
});
