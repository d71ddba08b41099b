//! `ocf:clever:gwping`: everything lives in the library; see `clever_gwping::DECLARATION`.

fn main() -> std::process::ExitCode {
    clever_ocf::run(&clever_gwping::DECLARATION)
}
