//! Child processes that die with the orchestrator. Each is spawned from one thread that lives
//! as long as the process, with `PR_SET_PDEATHSIG = SIGKILL`: when the orchestrator goes away,
//! even by SIGKILL, the kernel kills the child, so a crashed `serve` leaves no try running on
//! beside the retry that the next `serve` starts (`PR_SET_PDEATHSIG` fires when the spawning
//! *thread* exits, hence the one long-lived spawner thread rather than the runtime's workers).
//! Processes the child started itself outlive it; what the try's command does after them
//! does not happen.

use std::{io, sync::OnceLock};

use nix::sys::signal::Signal;
use tokio::{
    process::{Child, Command},
    runtime::Handle,
    sync::oneshot,
};

type Request = (Command, Handle, oneshot::Sender<io::Result<Child>>);

fn spawner() -> &'static std::sync::Mutex<std::sync::mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (requests, receiver) = std::sync::mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("updraft-spawner".into())
            .spawn(move || {
                for (mut command, runtime, reply) in receiver {
                    let _entered = runtime.enter();
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("the OS starts a thread");
        std::sync::Mutex::new(requests)
    })
}

/// Spawns `command` so that it is killed if this process dies.
pub(crate) async fn spawn(mut command: Command) -> io::Result<Child> {
    die_with_this_process(&mut command);
    let (reply, answer) = oneshot::channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, Handle::current(), reply))
        .map_err(|_| io::Error::other("the process spawner thread has stopped"))?;
    answer
        .await
        .map_err(|_| io::Error::other("the process spawner thread has stopped"))?
}

#[allow(unsafe_code)]
fn die_with_this_process(command: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the child between fork and exec. It makes only
    // async-signal-safe system calls (prctl, getppid) and allocates nothing: its errors are
    // built from raw OS error codes.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // The parent died before the signal was armed: do not run orphaned.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}
