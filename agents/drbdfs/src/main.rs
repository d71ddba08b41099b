fn main() -> std::process::ExitCode {
    clever_ocf::run(&clever_agent_drbdfs::DECLARATION)
}
