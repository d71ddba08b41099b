//! `clever-cib`, the command: its command line (also the source of its man page, see
//! `tools/docgen`). The generator itself is the `clever-cib` library in `crates/cib`.

pub mod cli;
