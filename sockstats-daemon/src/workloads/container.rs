//! Containers from cgroup paths: which runtime made a cgroup, and the container's id.
//!
//! Each runtime names its containers' cgroups after the container's 64-hex-digit id, with a
//! prefix of its own under systemd's cgroup manager and bare under the cgroupfs one:
//!
//! | Runtime | systemd manager | cgroupfs manager |
//! |---|---|---|
//! | Docker | `/system.slice/docker-<id>.scope` | `/docker/<id>` |
//! | Podman | `/machine.slice/libpod-<id>.scope` | `/libpod_parent/libpod-<id>`, in a pod `/libpod_parent/<pod id>/libpod-<id>` |
//! | containerd (Kubernetes, nerdctl) | `…/kubepods-…-pod<uid>.slice/cri-containerd-<id>.scope`, `nerdctl-<id>.scope` | `/kubepods/<class>/pod<uid>/<id>`, `/<namespace>/<id>` |
//! | CRI-O | `…/crio-<id>.scope` | `/kubepods/<class>/pod<uid>/crio-<id>` |
//!
//! A cgroup is in the container of the first such component of its path, so a container's
//! own sub-cgroups (`libpod-<id>.scope/container`) and containers nested in it are the
//! outer container's, as the host sees them. The monitors Podman and CRI-O run beside each
//! container (`libpod-conmon-<id>`, `crio-conmon-<id>`) are not the container.
use serde::{Deserialize, Serialize};

/// The runtime that made a container's cgroup, as far as the path tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    Docker,
    Podman,
    Containerd,
    CriO,
    /// A bare id in a Kubernetes pod's cgroup (containerd and CRI-O both make those) or under
    /// a parent no runtime is known by.
    Unknown,
}

/// A container's cgroup, found in a cgroup path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerCgroup<'p> {
    pub runtime: Runtime,
    /// The container's id: 64 lowercase hex digits.
    pub id: &'p str,
    /// The path of the container's own cgroup (a prefix of the path it was found in).
    pub path: &'p str,
}

/// Length of a container id, and of the short form shown when no name is known.
pub const ID_LEN: usize = 64;
pub const SHORT_ID_LEN: usize = 12;

/// The container the cgroup at `path` (relative to the cgroup2 mount) is in, if any.
#[must_use]
pub fn container_of(path: &str) -> Option<ContainerCgroup<'_>> {
    let mut start = 0;
    let mut parent = "";
    for component in path.split('/') {
        let end = start + component.len();
        if let Some((runtime, id)) = classify(parent, component) {
            return Some(ContainerCgroup {
                runtime,
                id,
                path: &path[..end],
            });
        }
        parent = component;
        start = end + 1;
    }
    None
}

/// The runtime and id a path component names, given the component before it.
fn classify<'c>(parent: &str, component: &'c str) -> Option<(Runtime, &'c str)> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    if is_id(name) && parent == "libpod_parent" {
        // A Podman pod's own cgroup (cgroupfs manager): its containers are below it.
        return None;
    }
    if is_id(name) {
        let runtime = if parent == "docker" {
            Runtime::Docker
        } else {
            Runtime::Unknown
        };
        return Some((runtime, name));
    }
    let (prefix, id) = name.rsplit_once('-')?;
    if !is_id(id) {
        return None;
    }
    let runtime = match prefix {
        "docker" => Runtime::Docker,
        "libpod" => Runtime::Podman,
        "cri-containerd" | "nerdctl" => Runtime::Containerd,
        "crio" => Runtime::CriO,
        _ => return None, // `libpod-conmon`, `crio-conmon` and anything unknown
    };
    Some((runtime, id))
}

/// Is `text` a container id (64 lowercase hex digits)?
#[must_use]
pub fn is_id(text: &str) -> bool {
    text.len() == ID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4c01db0b339c3e6b3f1eb6d2c2f1b5ab4ac0a1a3f2e0c9d8b7a6f5e4d3c2b1a0";

    #[test]
    fn finds_each_runtimes_cgroups() {
        let cases = [
            (format!("/system.slice/docker-{ID}.scope"), Runtime::Docker, 0),
            (format!("/docker/{ID}"), Runtime::Docker, 0),
            (format!("/machine.slice/libpod-{ID}.scope/container"), Runtime::Podman, 10),
            (format!("/libpod_parent/libpod-{ID}"), Runtime::Podman, 0),
            (
                format!("/libpod_parent/{}/libpod-{ID}", "7".repeat(64)),
                Runtime::Podman,
                0,
            ),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_5678.slice/cri-containerd-{ID}.scope"),
                Runtime::Containerd,
                0,
            ),
            (format!("/system.slice/nerdctl-{ID}.scope"), Runtime::Containerd, 0),
            (format!("/kubepods/besteffort/pod1234-5678/crio-{ID}"), Runtime::CriO, 0),
            (format!("/kubepods/besteffort/pod1234-5678/{ID}"), Runtime::Unknown, 0),
            (format!("/default/{ID}"), Runtime::Unknown, 0),
        ];
        for (path, runtime, below) in cases {
            let found = container_of(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!((found.runtime, found.id), (runtime, ID), "{path}");
            assert_eq!(found.path, &path[..path.len() - below], "{path}");
        }
    }

    #[test]
    fn other_cgroups_are_in_no_container() {
        for path in [
            "/".to_owned(),
            "/system.slice/nginx.service".to_owned(),
            format!("/libpod_parent/libpod-conmon-{ID}"),
            format!("/kubepods/pod1/crio-conmon-{ID}"),
            format!("/docker/{}", &ID[..12]),
            format!("/docker/{}", ID.to_uppercase()),
            format!("/system.slice/other-{ID}.scope"),
        ] {
            assert_eq!(container_of(&path), None, "{path}");
        }
    }

    #[test]
    fn the_outermost_container_wins() {
        let inner = "0".repeat(64);
        let path = format!("/docker/{ID}/docker/{inner}");
        assert_eq!(container_of(&path).unwrap().id, ID);
    }
}
