//! The node attribute, through `attrd_updater` (the one program gwping runs).
//!
//! attrd applies the dampening delay to every change of value, including the first: `start`
//! therefore writes with no delay (`--update-both --delay=0s`) and then sets the configured
//! delay (`--update-delay`), which leaves the value as it is. Later updates send the value and
//! the delay together (`--update-both`): when attrd has restarted it has forgotten the
//! attribute, and the delay must come with the value that creates it again. `--update` with
//! `--delay` would not do: Pacemaker before 2.1.7 (Debian 12 has 2.1.5) drops that delay, and
//! the attribute would stay undampened. Sending the delay attrd already has changes nothing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clever_command::{CommandError, CommandLine, RunCommand};
use clever_deadline::Deadline;

use crate::params::AttributeName;

/// Where `attrd_updater` is looked for after `$PATH`.
const FALLBACK: &str = "/usr/sbin/attrd_updater";

/// The `attrd_updater` program: the first on `path` (a `$PATH` value), else the Debian/RHEL
/// location.
pub fn locate(path: Option<OsString>) -> Option<PathBuf> {
    path.iter()
        .flat_map(std::env::split_paths)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("attrd_updater"))
        .chain(std::iter::once(PathBuf::from(FALLBACK)))
        .find(|candidate| candidate.is_file())
}

/// attrd's notation for a delay: whole seconds, else milliseconds.
pub fn delay(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// One attribute of the local node.
#[derive(Debug)]
pub struct Attribute<'a> {
    pub program: &'a Path,
    pub name: &'a AttributeName,
    pub dampen: Duration,
}

impl Attribute<'_> {
    fn command(&self) -> CommandLine {
        CommandLine::new(self.program).arg(format!("--name={}", self.name))
    }

    /// The commands of [`Attribute::set_now`].
    pub fn set_now_commands(&self, value: i64) -> Vec<CommandLine> {
        let mut commands = vec![self
            .command()
            .arg(format!("--update-both={value}"))
            .arg("--delay=0s")];
        if !self.dampen.is_zero() {
            commands.push(
                self.command()
                    .arg("--update-delay")
                    .arg(format!("--delay={}", delay(self.dampen))),
            );
        }
        commands
    }

    /// Writes `value` at once, then restores the dampening for later updates.
    pub fn set_now(
        &self,
        runner: &dyn RunCommand,
        value: i64,
        deadline: &Deadline,
    ) -> Result<(), CommandError> {
        for command in self.set_now_commands(value) {
            runner.run_ok(&command, deadline)?;
        }
        Ok(())
    }

    pub fn update_command(&self, value: i64) -> CommandLine {
        self.command()
            .arg(format!("--update-both={value}"))
            .arg(format!("--delay={}", delay(self.dampen)))
    }

    /// Sets `value`, written to the CIB after the dampening delay.
    pub fn update(
        &self,
        runner: &dyn RunCommand,
        value: i64,
        deadline: &Deadline,
    ) -> Result<(), CommandError> {
        runner
            .run_ok(&self.update_command(value), deadline)
            .map(drop)
    }

    pub fn delete_command(&self) -> CommandLine {
        self.command().arg("--delete")
    }

    /// Removes the value, so `not_defined` rules apply.
    pub fn delete(&self, runner: &dyn RunCommand, deadline: &Deadline) -> Result<(), CommandError> {
        runner.run_ok(&self.delete_command(), deadline).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clever_ocf::ParameterType;

    #[test]
    fn delays_in_attrd_notation() {
        assert_eq!(delay(Duration::from_secs(5)), "5s");
        assert_eq!(delay(Duration::ZERO), "0s");
        assert_eq!(delay(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn command_lines() {
        let name = AttributeName::parse("pingd").unwrap();
        let attribute = Attribute {
            program: Path::new("/usr/sbin/attrd_updater"),
            name: &name,
            dampen: Duration::from_secs(5),
        };
        let shown: Vec<String> = attribute
            .set_now_commands(3)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "/usr/sbin/attrd_updater --name=pingd --update-both=3 --delay=0s",
                "/usr/sbin/attrd_updater --name=pingd --update-delay --delay=5s",
            ]
        );
        assert_eq!(
            attribute.update_command(-2).to_string(),
            "/usr/sbin/attrd_updater --name=pingd --update-both=-2 --delay=5s"
        );
        assert_eq!(
            attribute.delete_command().to_string(),
            "/usr/sbin/attrd_updater --name=pingd --delete"
        );
        let undampened = Attribute {
            dampen: Duration::ZERO,
            ..attribute
        };
        assert_eq!(undampened.set_now_commands(1).len(), 1);
    }

    #[test]
    fn locate_prefers_path() {
        let dir = std::env::temp_dir().join(format!("gwping-locate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("attrd_updater"), "").unwrap();
        let path = std::env::join_paths([Path::new("relative"), &dir]).unwrap();
        assert_eq!(locate(Some(path)), Some(dir.join("attrd_updater")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
