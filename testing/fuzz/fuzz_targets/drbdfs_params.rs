//! Every declared parameter of `ocf:clever:drbdfs` as arbitrary bytes, through both the
//! framework's loader and the agent's typed configuration: no panic, and what is accepted keeps
//! the promises the agent relies on before it runs mount(8) as root.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;

/// Options that change what a mount means; none may survive stage one.
const FORBIDDEN: &[&str] = &[
    "bind",
    "rbind",
    "move",
    "remount",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "unbindable",
    "runbindable",
];

fuzz_target!(|data: &[u8]| {
    let declared = clever_agent_drbdfs::DECLARATION.parameters;
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
    let Ok(config) = clever_agent_drbdfs::Config::from_parameters(&parameters) else {
        return;
    };
    assert!(config.device.as_path().is_absolute());
    assert!(config.directory.as_path().is_absolute());
    assert!(config.directory.as_path().parent().is_some(), "directory /");
    // mount -t / fsck -t take it as their option's value, so a leading '-' smuggles nothing.
    assert!(!config.fstype.is_empty() && !config.fstype.contains(','));
    if let Some(options) = &config.options {
        assert!(!options.chars().any(|c| c.is_whitespace() || c.is_control()));
        for option in options.split(',') {
            let name = option.split('=').next().unwrap_or(option);
            assert!(
                !FORBIDDEN.contains(&name),
                "smuggled {name:?} in {options:?}"
            );
        }
    }
    let _ = config.is_drbd();
});
