//! `ocf:clever:gwping`: everything lives in the library; see `clever_agent_gwping::DECLARATION`.

fn main() -> std::process::ExitCode {
    clever_ocf::run(&clever_agent_gwping::DECLARATION)
}
