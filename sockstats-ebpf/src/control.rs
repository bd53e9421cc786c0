//! What the running daemon tells the programs at run time (its secret, whether closed
//! sockets are validated): a small array only the daemon writes.
use crate::maps::CONTROL;
use sockstats_common::Control;

/// The value of `slot` (0 until the daemon set it).
#[inline(always)]
pub fn get(slot: Control) -> u64 {
    CONTROL.get(slot as u32).copied().unwrap_or(0)
}
