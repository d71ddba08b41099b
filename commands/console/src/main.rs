fn main() -> std::process::ExitCode {
    clever_console::main()
}
