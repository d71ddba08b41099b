//! `ocf:clever:vm`: everything lives in the library; see `clever_agent_vm::DECLARATION`.

fn main() -> std::process::ExitCode {
    clever_ocf::run(&clever_agent_vm::DECLARATION)
}
