//! Names of socket owners: users (NSS, like `ls -l`) and processes (`/proc/<pid>/comm`);
//! cgroups are named by [`crate::cgroup::CgroupTree`].
use std::fs;

use nix::unistd::{Uid, User};

/// The name of `uid`, or `uid <N>` when no user has it.
#[must_use]
pub fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

/// The uid of the user `name`.
#[must_use]
pub fn uid_of_user(name: &str) -> Option<u32> {
    User::from_name(name)
        .ok()
        .flatten()
        .map(|user| user.uid.as_raw())
}

/// `<pid> (<command>)`, or `<pid> (exited)` once the process is gone.
#[must_use]
pub fn process_name(tgid: u32) -> String {
    match fs::read_to_string(format!("/proc/{tgid}/comm")) {
        Ok(comm) => format!("{tgid} ({})", comm.trim_end()),
        Err(_) => format!("{tgid} (exited)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_users_and_processes() {
        assert_eq!(user_name(0), "root");
        assert_eq!(uid_of_user("root"), Some(0));
        assert_eq!(uid_of_user("no-such-user-here"), None);
        assert_eq!(user_name(3_999_999_999), "uid 3999999999");
        let me = std::process::id();
        assert!(process_name(me).starts_with(&format!("{me} (")));
    }
}
