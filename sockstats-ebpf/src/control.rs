//! What the running daemon tells the programs at run time (its secret, whether closed
//! sockets are validated): a small array only the daemon writes.
use aya_ebpf::{macros::map, maps::Array};
use sockstats_common::Control;

#[map(name = "CONTROL")]
static CONTROL: Array<u64> = Array::pinned(Control::COUNT, 0);

/// The value of `slot` (0 until the daemon set it).
#[inline(always)]
pub fn get(slot: Control) -> u64 {
    CONTROL.get(slot as u32).copied().unwrap_or(0)
}
