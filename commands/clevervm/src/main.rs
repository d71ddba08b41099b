fn main() -> std::process::ExitCode {
    clevervm::main()
}
