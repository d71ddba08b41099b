fn main() -> std::process::ExitCode {
    clever_ocf::run(&clever_drbdfs::DECLARATION)
}
