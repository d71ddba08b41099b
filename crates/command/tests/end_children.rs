//! A termination signal can arrive while a child is being spawned: forked, not yet recorded. The
//! agent's last act must end that child too, or it outlives the agent that Pacemaker saw fail;
//! and the thread that ran the child must not answer for its death before the ending does.
//! This file holds one test because [`end_children`] ends every child of the process.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use clever_command::{
    end_children, ChildrenEnded, CommandLine, HostCommands, RunCommand, ENDING_GRACE,
};
use clever_deadline::Deadline;
use nix::sys::signal::Signal;

/// Enough rounds that, without the spawn window, some `end_children` lands in it.
const ROUNDS: usize = 100;

/// Longer than any kill takes to show: SIGKILL is not held off by anything but a stuck kernel.
const KILL_SHOWS_WITHIN: Duration = Duration::from_secs(5);

fn is_gone(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| stat.contains(") Z "))
}

#[test]
fn an_ending_reaches_every_child_and_holds_its_callers_answer() {
    let mut callers = Vec::new();
    for round in 0..ROUNDS {
        let (tid_sender, tid) = mpsc::channel();
        let caller = std::thread::spawn(move || {
            let _ = tid_sender.send(nix::unistd::gettid());
            let deadline = Deadline::after(Duration::from_secs(60));
            let ran = HostCommands.run(&CommandLine::new("/bin/sleep").arg("3600"), &deadline);
            (ran, Instant::now())
        });
        let tid = tid.recv().unwrap();
        // The child shows in its parent thread's list at fork, before exec and long before the
        // spawn returns: ending the children as soon as it shows hits the window.
        let children = format!("/proc/self/task/{tid}/children");
        let child = loop {
            let listed = std::fs::read_to_string(&children).unwrap_or_default();
            if let Some(pid) = listed.split_whitespace().next() {
                break pid.to_owned();
            }
            std::hint::spin_loop();
        };
        assert_eq!(end_children(Signal::SIGTERM), ChildrenEnded::Yes);
        let ended = Instant::now();
        while !is_gone(&child) {
            assert!(
                ended.elapsed() < KILL_SHOWS_WITHIN,
                "round {round}: child {child} survived the ending"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        callers.push((round, ended, caller));
    }
    for (round, ended, caller) in callers {
        let (ran, answered) = caller.join().unwrap();
        let output = ran.unwrap();
        assert_eq!(output.code(), None, "round {round}: {output:?}");
        let held = answered.duration_since(ended);
        assert!(
            held >= ENDING_GRACE,
            "round {round}: the caller answered {held:?} after the ending began"
        );
    }
}
