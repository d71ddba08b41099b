//! A termination signal can arrive while a child is being spawned: forked, not yet recorded. The
//! agent's last act must end that child too, or it outlives the agent that Pacemaker saw fail.
//! This file holds one test because [`end_children`] ends every child of the process.

use std::sync::mpsc;
use std::time::Duration;

use clever_command::{end_children, ChildrenEnded, CommandLine, HostCommands, RunCommand};
use clever_deadline::Deadline;
use nix::sys::signal::Signal;

/// Enough rounds that, without the spawn window, some `end_children` lands in it.
const ROUNDS: usize = 100;

#[test]
fn a_child_caught_between_fork_and_its_record_is_ended_too() {
    for round in 0..ROUNDS {
        let (tid_sender, tid) = mpsc::channel();
        let runner = std::thread::spawn(move || {
            let _ = tid_sender.send(nix::unistd::gettid());
            let deadline = Deadline::after(Duration::from_secs(20));
            HostCommands.run(&CommandLine::new("/bin/sleep").arg("3600"), &deadline)
        });
        let tid = tid.recv().unwrap();
        // The child shows in its parent thread's list at fork, before exec and long before the
        // spawn returns: ending the children as soon as it shows hits the window.
        let children = format!("/proc/self/task/{tid}/children");
        while std::fs::read_to_string(&children).is_ok_and(|c| c.trim().is_empty()) {
            std::hint::spin_loop();
        }
        assert_eq!(end_children(Signal::SIGTERM), ChildrenEnded::Yes);
        let ran = runner.join().unwrap();
        let output = ran.unwrap_or_else(|e| panic!("round {round}: the child survived: {e}"));
        assert_eq!(output.code(), None, "round {round}: {output:?}");
    }
}
