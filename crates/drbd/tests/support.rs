//! Fixture access, a compact rendering of the model for exact comparisons, the transcript
//! splitter for `real-drbd84-tcg/`, and a fake command runner.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;

use clever_command::{CommandError, CommandLine, Output, RunCommand};
use clever_deadline::Deadline;
use clever_drbd::{
    parse_events2, parse_proc_drbd, parse_status_json, parse_status_text, DrbdParseError,
    MinorOwner, Resource,
};

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture(name: &str) -> String {
    let path = fixtures_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Which parser reads a fixture, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Text,
    Events2,
    Proc,
}

pub fn kind_of(name: &str) -> Kind {
    if name.ends_with(".json") {
        Kind::Json
    } else if name.contains("events2") {
        Kind::Events2
    } else if name.starts_with("proc-drbd") {
        Kind::Proc
    } else if name.contains("status") {
        Kind::Text
    } else {
        panic!("no parser for fixture {name}")
    }
}

/// The one DRBD 8.4 resource of the proc fixtures, as the udev links would name it.
pub fn owners_r0() -> std::collections::BTreeMap<u32, MinorOwner> {
    [
        (0, "r0"),
        (1, "r1"),
        (4, "r4"),
        (5, "r5"),
        (6, "r6"),
        (8, "r8"),
    ]
    .into_iter()
    .map(|(minor, name)| {
        (
            minor,
            MinorOwner {
                resource: name.into(),
                volume: 0,
            },
        )
    })
    .collect()
}

/// Runs the fixture's parser; `/proc/drbd` is joined with [`owners_r0`].
pub fn parse(kind: Kind, text: &str) -> Result<Vec<Resource>, DrbdParseError> {
    match kind {
        Kind::Json => parse_status_json(text),
        Kind::Text => parse_status_text(text),
        Kind::Events2 => parse_events2(text),
        Kind::Proc => parse_proc_drbd(text).map(|p| p.resources(&owners_r0())),
    }
}

/// Every field of the model, one object per line, optional fields only when known:
/// comparing this text compares the whole parse.
pub fn render(resources: &[Resource]) -> String {
    let mut out = String::new();
    for r in resources {
        let suspended = if r.suspended { " suspended" } else { "" };
        let _ = writeln!(out, "{} {}{suspended}", r.name, r.role);
        for d in &r.devices {
            let _ = write!(out, "  vol{}", d.volume);
            if let Some(minor) = d.minor {
                let _ = write!(out, " minor{minor}");
            }
            let _ = write!(out, " {}", d.disk);
            if let Some(client) = d.client {
                let _ = write!(out, " client={client}");
            }
            if let Some(quorum) = d.quorum {
                let _ = write!(out, " quorum={quorum}");
            }
            out.push('\n');
        }
        for c in &r.connections {
            let _ = write!(out, "  {}", c.name);
            if let Some(node) = c.peer_node_id {
                let _ = write!(out, " node{node}");
            }
            let _ = writeln!(out, " {} {}", c.state, c.peer_role);
            for p in &c.peer_devices {
                let _ = write!(out, "    vol{} {} {}", p.volume, p.replication, p.peer_disk);
                if let Some(client) = p.peer_client {
                    let _ = write!(out, " client={client}");
                }
                if let Some(done) = p.resync_done_percent {
                    let _ = write!(out, " done={done:.2}");
                }
                if let Some(oos) = p.out_of_sync_kib {
                    let _ = write!(out, " oos={oos}");
                }
                out.push('\n');
            }
        }
    }
    out
}

/// One command and its output from a `real-drbd84-tcg/` transcript.
#[derive(Debug, Clone)]
pub struct Capture {
    pub vm: String,
    pub command: String,
    pub output: String,
}

/// Splits a transcript at its `######## vm=NAME` and `$ command` lines.
pub fn transcript(text: &str) -> Vec<Capture> {
    let mut captures: Vec<Capture> = Vec::new();
    let mut vm = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("######## vm=") {
            vm = rest.split_whitespace().next().unwrap().to_owned();
        } else if let Some(command) = line.strip_prefix("$ ") {
            captures.push(Capture {
                vm: vm.clone(),
                command: command.to_owned(),
                output: String::new(),
            });
        } else if let Some(capture) = captures.last_mut() {
            capture.output.push_str(line);
            capture.output.push('\n');
        }
    }
    captures
}

/// Plays back recorded tool runs in order and records the command lines it was given.
#[derive(Debug, Default)]
pub struct Recorded {
    replies: RefCell<Vec<Reply>>,
    pub calls: RefCell<Vec<String>>,
}

#[derive(Debug)]
pub enum Reply {
    Exit {
        code: i32,
        stdout: String,
        stderr: String,
    },
    TimedOut,
}

impl Recorded {
    pub fn new(replies: Vec<Reply>) -> Self {
        Self {
            replies: RefCell::new(replies),
            calls: RefCell::default(),
        }
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

pub fn exit(code: i32, stdout: &str, stderr: &str) -> Reply {
    Reply::Exit {
        code,
        stdout: stdout.to_owned(),
        stderr: stderr.to_owned(),
    }
}

impl RunCommand for Recorded {
    fn run(&self, command: &CommandLine, _deadline: &Deadline) -> Result<Output, CommandError> {
        self.calls.borrow_mut().push(command.to_string());
        let mut replies = self.replies.borrow_mut();
        assert!(!replies.is_empty(), "unexpected command {command}");
        match replies.remove(0) {
            Reply::Exit {
                code,
                stdout,
                stderr,
            } => Ok(Output {
                status: ExitStatus::from_raw(code << 8),
                stdout: stdout.into_bytes(),
                stderr: stderr.into_bytes(),
            }),
            Reply::TimedOut => Err(CommandError::TimedOut {
                command: command.to_string(),
                budget: std::time::Duration::from_secs(1),
            }),
        }
    }
}

/// `Kind: reason`, so a table states the verdict and its exact text at once.
pub fn mount_text(verdict: &clever_drbd::MountVerdict) -> String {
    use clever_drbd::MountVerdict as V;
    let kind = match verdict {
        V::Allowed(_) => "Allowed",
        V::AllowedByAutoPromote(_) => "AllowedByAutoPromote",
        V::Wait(_) => "Wait",
        V::Refuse(_) => "Refuse",
    };
    format!("{kind}: {}", verdict.reason())
}

pub fn health_text(health: &clever_drbd::ReplicationHealth) -> String {
    use clever_drbd::ReplicationHealth as H;
    let kind = match health {
        H::Healthy(_) => "Healthy",
        H::Degraded(_) => "Degraded",
        H::LostPrimary(_) => "LostPrimary",
    };
    format!("{kind}: {}", health.reason())
}
