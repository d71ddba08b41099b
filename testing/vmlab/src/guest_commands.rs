//! Our command seam, pointed into a VM: code that takes a [`RunCommand`] (the DRBD state reader,
//! `clevervm status`) runs its programs in the guest while the test process stays on the host.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use clever_command::{CommandError, CommandLine, Output, RunCommand};
use clever_deadline::Deadline;

use crate::vm::Vm;

/// Runs each command line in `vm` (argv quoted for the guest's `sh`, nothing else re-parsed).
#[derive(Debug, Clone, Copy)]
pub struct GuestCommands<'a> {
    pub vm: &'a Vm,
}

impl<'a> GuestCommands<'a> {
    pub fn new(vm: &'a Vm) -> Self {
        Self { vm }
    }
}

/// `'…'` with embedded quotes closed, escaped and reopened.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

impl RunCommand for GuestCommands<'_> {
    fn run(&self, command: &CommandLine, deadline: &Deadline) -> Result<Output, CommandError> {
        let mut script = String::from("exec env");
        for (key, value) in command.environment() {
            script.push(' ');
            script.push_str(&shell_quote(&format!(
                "{}={}",
                key.to_string_lossy(),
                value.to_string_lossy()
            )));
        }
        script.push(' ');
        script.push_str(&shell_quote(&command.program().to_string_lossy()));
        for arg in command.arguments() {
            script.push(' ');
            script.push_str(&shell_quote(&arg.to_string_lossy()));
        }
        match self.vm.run(&script, deadline.remaining()) {
            Ok(output) => Ok(Output {
                status: ExitStatus::from_raw((output.code & 0xff) << 8),
                stdout: output.stdout.into_bytes(),
                stderr: output.stderr.into_bytes(),
            }),
            Err(crate::VmLabError::ScriptTimedOut { budget, .. }) => Err(CommandError::TimedOut {
                command: command.to_string(),
                budget,
            }),
            Err(e) => Err(CommandError::Wait {
                command: command.to_string(),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_byte() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(x)"), "'$(x)'");
    }
}
