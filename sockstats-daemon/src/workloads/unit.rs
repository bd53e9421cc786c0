//! systemd units from cgroup paths: `/system.slice/nginx.service` is in `nginx.service`.
//!
//! systemd lays its cgroups out as slices (`*.slice`) holding units: services, scopes and the
//! like. As systemd's own `cg_path_get_unit` does, a cgroup's unit is the first path component
//! that is a unit other than a slice, so everything a user's manager runs is in
//! `user@1000.service` and a login session is `session-3.scope`. A cgroup in slices only (or in
//! no systemd unit at all, like `/libpod_parent/…` on a host without systemd) has no unit, and
//! so has one inside a container that is not in a unit of the host (`/docker/<id>/…`): the
//! units a container's own systemd runs are not the host's.

/// The kinds of systemd unit whose names can appear in a cgroup path, without `slice`
/// (systemd.unit(5): only these run processes).
const UNIT_SUFFIXES: [&str; 5] = ["service", "scope", "socket", "mount", "swap"];

/// The unit of the cgroup at `path` (relative to the cgroup2 mount), if it is in one.
#[must_use]
pub fn unit_of(path: &str) -> Option<&str> {
    // Components after the container's own one are the container's.
    let host_part = super::container::container_of(path).map_or(path, |container| container.path);
    host_part
        .split('/')
        .filter(|component| !component.is_empty())
        .find(|component| is_unit_name(component))
}

/// The path of the cgroup that holds the whole unit `unit`, if `path` is in that unit:
/// `/user.slice/user-1000.slice/user@1000.service` for anything below it.
#[must_use]
pub fn unit_cgroup<'p>(path: &'p str, unit: &str) -> Option<&'p str> {
    let mut start = 0;
    for component in path.split('/') {
        let end = start + component.len();
        if is_unit_name(component) {
            return (component == unit).then(|| &path[..end]);
        }
        start = end + 1;
    }
    None
}

/// Is `name` a systemd unit name of a kind that runs processes: `<name>.service`,
/// `<name>.scope`, …, made of the characters systemd allows (`[A-Za-z0-9:_.\-@]`, with
/// `\x2d`-style escapes)?
#[must_use]
pub fn is_unit_name(name: &str) -> bool {
    let Some((stem, suffix)) = name.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && name.len() <= 255
        && UNIT_SUFFIXES.contains(&suffix)
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_.-@\\".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_unit_below_the_slices() {
        for (path, unit) in [
            ("/system.slice/nginx.service", Some("nginx.service")),
            ("/system.slice/nginx.service/worker", Some("nginx.service")),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service",
                Some("user@1000.service"),
            ),
            (
                "/user.slice/user-1000.slice/session-3.scope",
                Some("session-3.scope"),
            ),
            (
                "/system.slice/system-getty.slice/getty@tty1.service",
                Some("getty@tty1.service"),
            ),
            (
                "/machine.slice/libpod-0123abcd.scope/container",
                Some("libpod-0123abcd.scope"),
            ),
            ("/system.slice", None),
            ("/", None),
            ("/libpod_parent/libpod-0123", None),
            ("/sockstats-test-x/web.service", Some("web.service")),
            ("/a.slice/b.timer", None),
            (
                "/docker/4c01db0b339c3e6b3f1eb6d2c2f1b5ab4ac0a1a3f2e0c9d8b7a6f5e4d3c2b1a0/system.slice/nginx.service",
                None,
            ),
            (
                "/system.slice/docker-4c01db0b339c3e6b3f1eb6d2c2f1b5ab4ac0a1a3f2e0c9d8b7a6f5e4d3c2b1a0.scope/init.scope",
                Some("docker-4c01db0b339c3e6b3f1eb6d2c2f1b5ab4ac0a1a3f2e0c9d8b7a6f5e4d3c2b1a0.scope"),
            ),
        ] {
            assert_eq!(unit_of(path), unit, "{path}");
        }
    }

    #[test]
    fn finds_the_cgroup_that_holds_a_unit() {
        let path = "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service";
        assert_eq!(
            unit_cgroup(path, "user@1000.service"),
            Some("/user.slice/user-1000.slice/user@1000.service")
        );
        assert_eq!(unit_cgroup(path, "foo.service"), None);
        assert_eq!(
            unit_cgroup("/system.slice/nginx.service", "nginx.service"),
            Some("/system.slice/nginx.service")
        );
        assert_eq!(unit_cgroup("/system.slice", "system.slice"), None);
    }

    #[test]
    fn knows_unit_names() {
        for good in [
            "nginx.service",
            "user@1000.service",
            "session-3.scope",
            "a\\x2db.mount",
        ] {
            assert!(is_unit_name(good), "{good}");
        }
        for bad in [
            "nginx",
            ".service",
            "web.slice",
            "a b.service",
            "x.timer",
            "nginx.service/",
        ] {
            assert!(!is_unit_name(bad), "{bad}");
        }
    }
}
