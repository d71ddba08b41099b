//! Every declared parameter of `ocf:clever:gwping` as arbitrary bytes, through both the
//! framework's loader and the agent's typed settings: no panic, and what is accepted is in range.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let declared = clever_agent_gwping::DECLARATION.parameters;
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
    let Ok(settings) = clever_agent_gwping::params::Settings::from_parameters(&parameters) else {
        return;
    };
    assert!(!settings.hosts.is_empty());
    assert!(settings.hosts.len() <= clever_agent_gwping::params::MAX_HOSTS);
    assert!(
        settings.multiplier.unsigned_abs()
            <= clever_agent_gwping::params::MAX_MULTIPLIER.unsigned_abs()
    );
    assert!(settings.attempts >= 1);
    assert!(!settings.timeout.is_zero());
    if let Some(pidfile) = &settings.pidfile {
        assert!(pidfile.as_path().is_absolute());
    }
    // The attribute name and the hosts end up on attrd_updater's command line and in logs.
    let _ = format!("{settings:?}");
});
