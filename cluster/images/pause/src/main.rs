//! The pause process of every pod sandbox (upstream's build/pause/linux/pause.c): it keeps
//! the pod's namespaces alive, reaps the zombies of a shared PID namespace, and exits 0 on
//! SIGINT or SIGTERM.
//!
//! The signals are blocked and taken with sigwait rather than handled: as PID 1 of a PID
//! namespace a process only gets signals it has a handler for or has blocked, and a
//! blocked signal needs no (unsafe) handler.

use std::process::ExitCode;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "-v" {
            println!("pause.rs {VERSION}");
            return ExitCode::SUCCESS;
        }
    }
    if getpid() != Pid::from_raw(1) {
        eprintln!("Warning: pause should be the first process");
    }
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGCHLD);
    if let Err(e) = signals.thread_block() {
        eprintln!("pause: blocking signals: {e}");
        return ExitCode::from(1);
    }
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => reap(),
            Ok(sig) => {
                eprintln!("Shutting down, got signal: {sig}");
                return ExitCode::SUCCESS;
            }
            Err(Errno::EINTR) => {}
            Err(e) => {
                eprintln!("pause: sigwait: {e}");
                return ExitCode::from(2);
            }
        }
    }
}

/// Collects every exited child: one SIGCHLD may stand for several.
fn reap() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
