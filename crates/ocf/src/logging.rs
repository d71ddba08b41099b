//! Logging where a cluster admin looks: syslog, the HA log files, and stderr.
//!
//! Pacemaker passes its logging setup to agents in the environment (`HA_LOGFACILITY`,
//! `HA_LOGFILE`, `HA_DEBUGLOG`, `HA_debug`), as the shell agents' `ocf_log` expects. Every line
//! carries the agent and the resource instance, so `grep res_vm /var/log/syslog` finds it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record};
use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

use crate::context::Invocation;

/// Where log lines go, as read from the cluster's environment.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `agent(instance)`, the tag on every line.
    pub tag: String,
    /// `None` when `HA_LOGFACILITY=none`.
    pub facility: Option<Facility>,
    pub logfile: Option<PathBuf>,
    pub debuglog: Option<PathBuf>,
    pub debug: bool,
}

impl LogSettings {
    pub fn from_invocation(agent: &str, invocation: &Invocation) -> Self {
        let instance = invocation.var("OCF_RESOURCE_INSTANCE").unwrap_or(agent);
        let facility = match invocation.var("HA_LOGFACILITY") {
            None => Some(Facility::LOG_DAEMON),
            Some("none") => None,
            Some(name) => Some(Facility::from_str(name).unwrap_or(Facility::LOG_DAEMON)),
        };
        Self {
            tag: format!("{agent}({instance})"),
            facility,
            logfile: invocation.var("HA_LOGFILE").map(PathBuf::from),
            debuglog: invocation.var("HA_DEBUGLOG").map(PathBuf::from),
            debug: matches!(invocation.var("HA_debug"), Some("1" | "yes" | "true")),
        }
    }
}

/// The process-wide logger of an agent.
pub struct ClusterLog {
    settings: LogSettings,
    syslog: Option<Mutex<Logger<LoggerBackend, Formatter3164>>>,
}

impl std::fmt::Debug for ClusterLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLog")
            .field("settings", &self.settings)
            .field("syslog", &self.syslog.is_some())
            .finish()
    }
}

impl ClusterLog {
    /// Installs the logger. A missing syslog socket is not an error: the other sinks remain.
    pub fn install(settings: LogSettings) {
        let syslog = settings.facility.and_then(|facility| {
            syslog::unix(Formatter3164 {
                facility,
                hostname: None,
                process: settings.tag.clone(),
                pid: std::process::id(),
            })
            .ok()
            .map(Mutex::new)
        });
        let level = if settings.debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        };
        if log::set_boxed_logger(Box::new(Self { settings, syslog })).is_ok() {
            log::set_max_level(level);
        }
    }

    fn has_other_sink(&self) -> bool {
        self.syslog.is_some() || self.settings.logfile.is_some() || self.settings.debuglog.is_some()
    }
}

impl Log for ClusterLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Info || self.settings.debug
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        if let Some(syslog) = &self.syslog {
            if let Ok(mut syslog) = syslog.lock() {
                let _ = match record.level() {
                    Level::Error => syslog.err(&message),
                    Level::Warn => syslog.warning(&message),
                    Level::Info => syslog.info(&message),
                    Level::Debug | Level::Trace => syslog.debug(&message),
                };
            }
        }
        let line = format!(
            "{} {}[{}]: {}: {}\n",
            humantime::format_rfc3339_seconds(SystemTime::now()),
            self.settings.tag,
            std::process::id(),
            level_name(record.level()),
            message
        );
        if record.level() <= Level::Info {
            append(self.settings.logfile.as_ref(), &line);
        }
        append(self.settings.debuglog.as_ref(), &line);
        // Pacemaker records an agent's stderr with the operation; warnings belong there, and a
        // run by hand with no other sink shows everything.
        if record.level() <= Level::Warn || !self.has_other_sink() {
            let _ = std::io::stderr().write_all(
                format!(
                    "{}: {}: {}\n",
                    self.settings.tag,
                    level_name(record.level()),
                    message
                )
                .as_bytes(),
            );
        }
    }

    fn flush(&self) {}
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug | Level::Trace => "DEBUG",
    }
}

fn append(path: Option<&PathBuf>, line: &str) {
    if let Some(path) = path {
        if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_ha_environment() {
        let invocation = Invocation::new(
            ["monitor"],
            [
                ("OCF_RESOURCE_INSTANCE", "res_vm"),
                ("HA_LOGFACILITY", "local3"),
                ("HA_LOGFILE", "/var/log/ha.log"),
                ("HA_debug", "1"),
            ],
        );
        let settings = LogSettings::from_invocation("vm", &invocation);
        assert_eq!(settings.tag, "vm(res_vm)");
        assert!(matches!(settings.facility, Some(Facility::LOG_LOCAL3)));
        assert_eq!(settings.logfile, Some(PathBuf::from("/var/log/ha.log")));
        assert!(settings.debug);

        let quiet = Invocation::new(["monitor"], [("HA_LOGFACILITY", "none")]);
        let settings = LogSettings::from_invocation("vm", &quiet);
        assert!(settings.facility.is_none());
        assert_eq!(settings.tag, "vm(vm)");
        assert!(!settings.debug);

        let default = LogSettings::from_invocation("vm", &Invocation::default());
        assert!(matches!(default.facility, Some(Facility::LOG_DAEMON)));
    }
}
