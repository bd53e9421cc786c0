//! Which tasks are accounted: the whole host, or one cgroup v2 subtree (`--cgroup-root`).
//!
//! The cgroup programs are attached to the subtree's root, so the kernel scopes them. The
//! tracepoints fire for every task on the host: they create entries lazily only for tasks inside
//! the subtree, and count sockets that already have an entry wherever they are used.
use crate::globals::{ROOT_CGROUP_ID, ROOT_CGROUP_LEVEL};
use aya_ebpf::helpers::bpf_get_current_ancestor_cgroup_id;

/// Is the current task inside the accounted subtree?
#[inline(always)]
pub fn current_task_in_scope() -> bool {
    let level = ROOT_CGROUP_LEVEL.load();
    if level == 0 {
        return true;
    }
    let Ok(level) = i32::try_from(level) else {
        return false;
    };
    // SAFETY: a plain helper call; it returns 0 when the task is shallower than `level`.
    let ancestor = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
    ancestor == ROOT_CGROUP_ID.load()
}
