//! Signals `sockstats run` passes on to its command, as `sudo` and `timeout` do: they are
//! blocked and read from a signalfd (with `SIGCHLD`), so none is lost between two waits and
//! none kills `sockstats run` before it has cleaned up after the command.
use std::{
    io,
    process::{Child, ExitStatus},
};

use nix::{
    errno::Errno,
    sys::{
        signal::{kill, SigSet, Signal},
        signalfd::SignalFd,
    },
    unistd::Pid,
};

/// The signals passed on to the command.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Blocks [`FORWARDED`] and `SIGCHLD` for this (single) thread while it lives, and reads them.
/// They stay blocked after it is dropped, so that one arriving after the command exited does
/// not cut the clean-up short: the process exits with the command's status.
pub struct Forwarder {
    signals: SignalFd,
    previous: SigSet,
}

impl Forwarder {
    /// Blocks the signals. Call it before the command starts: its signal mask must then be
    /// reset to [`Forwarder::previous_mask`] between fork and exec (children inherit masks).
    pub fn new() -> io::Result<Self> {
        let mut set = SigSet::empty();
        for signal in FORWARDED {
            set.add(signal);
        }
        set.add(Signal::SIGCHLD);
        let previous = set.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)?;
        let signals = SignalFd::new(&set)?;
        Ok(Self { signals, previous })
    }

    /// The signal mask before [`Forwarder::new`], for the command.
    #[must_use]
    pub fn previous_mask(&self) -> SigSet {
        self.previous
    }

    /// Waits for `child` to exit, passing each forwarded signal on to it, and returns its
    /// status. Signals the terminal sent (Ctrl-C, Ctrl-\) went to the command's process group,
    /// so to the command too: they are not sent twice.
    pub fn wait(&mut self, child: &mut Child) -> io::Result<ExitStatus> {
        let pid = Pid::from_raw(i32::try_from(child.id()).map_err(io::Error::other)?);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            let info = match self.signals.read_signal() {
                Ok(Some(info)) => info,
                Ok(None) | Err(Errno::EINTR) => continue,
                Err(error) => return Err(error.into()),
            };
            let Ok(signal) = Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) else {
                continue;
            };
            if signal == Signal::SIGCHLD || info.ssi_code == libc::SI_KERNEL {
                continue;
            }
            // The command may have exited meanwhile: the next try_wait says so.
            let _ = kill(pid, signal);
        }
    }
}
