//! The lab's fence agent; see `clever_lab::fence`.

use std::io::{self, Read};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = if args.is_empty() {
        let mut text = String::new();
        if let Err(e) = io::stdin().read_to_string(&mut text) {
            eprintln!("fence_lab: reading options from stdin: {e}");
            return ExitCode::from(clever_lab::fence::EXIT_FAILED);
        }
        clever_lab::fence::parse_stdin(&text)
    } else {
        match clever_lab::fence::parse_args(&args) {
            Ok(options) => options,
            Err(e) => {
                eprintln!("fence_lab: {e}");
                return ExitCode::from(clever_lab::fence::EXIT_FAILED);
            }
        }
    };
    let code = clever_lab::fence::run(&options, &mut io::stdout(), &mut io::stderr());
    ExitCode::from(code)
}
