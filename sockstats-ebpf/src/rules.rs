//! Labeling rules: a new socket of a task in a cgroup (or below it), or of a uid, gets the
//! rule's label. The daemon writes the rules; they are looked up here when a socket's owner
//! becomes known, so not one byte of a ruled socket goes unlabeled.
use crate::{
    globals::TRACING_ANCESTOR_HELPER,
    maps::{RULES, RULE_KINDS},
};
use aya_ebpf::helpers::bpf_get_current_ancestor_cgroup_id;
use sockstats_common::{OwnerKey, OwnerKind, MAX_CGROUP_DEPTH, UNLABELED_ID};

// `TRACING_ANCESTOR_HELPER` (a global) is 1 when tracing programs may call
// `bpf_get_current_ancestor_cgroup_id` (Linux 5.18+). Read-only: on older kernels the verifier
// never sees the call.

/// Where a new socket is seen: the cgroup program at its creation, or a payload hook (a
/// tracing program) at its first use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SeenBy {
    CgroupProgram,
    TracingProgram,
}

/// The label a rule gives a socket made by the current task running as `uid`: the rule of the
/// deepest cgroup that holds the task, else the rule of `uid`; [`NO_RULE`] if none. Tracing
/// programs on kernels before 5.18 only apply uid rules.
#[inline(always)]
pub fn label_for(uid: u32, seen_by: SeenBy) -> u32 {
    let kinds = RULE_KINDS.get(0).copied().unwrap_or(0);
    if kinds == 0 {
        return NO_RULE;
    }
    // Plain integers with 0 for "none" (no rule maps to `unlabeled`), not `Option`s: Linux 5.10
    // refuses programs that may read a stack slot never written, which an `Option`'s payload is.
    let mut label = NO_RULE;
    let may_walk = seen_by == SeenBy::CgroupProgram || TRACING_ANCESTOR_HELPER.load() == 1;
    if may_walk && kinds & OwnerKind::Cgroup.bit() != 0 {
        label = deepest_cgroup_rule();
    }
    if label == NO_RULE && kinds & OwnerKind::Uid.bit() != 0 {
        // SAFETY: the value is copied out at once.
        label = unsafe { RULES.get(OwnerKey::uid(uid)) }
            .copied()
            .unwrap_or(NO_RULE);
    }
    label
}

/// "No rule": the label id no rule has (`unlabeled`).
pub const NO_RULE: u32 = UNLABELED_ID;

/// The label of the rule of the deepest cgroup that holds the current task, walking from the
/// root down (bounded by [`MAX_CGROUP_DEPTH`]); [`NO_RULE`] if none matches.
#[inline(always)]
fn deepest_cgroup_rule() -> u32 {
    let mut found = NO_RULE;
    for level in 0..MAX_CGROUP_DEPTH {
        #[expect(
            clippy::cast_possible_wrap,
            reason = "levels stay below MAX_CGROUP_DEPTH"
        )]
        let level = level as i32;
        // SAFETY: a plain helper call; it returns 0 below the task's own cgroup.
        let ancestor = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
        if ancestor == 0 {
            break;
        }
        // SAFETY: the value is copied out at once.
        if let Some(label) = unsafe { RULES.get(OwnerKey::cgroup(ancestor)) } {
            found = *label;
        }
    }
    found
}
