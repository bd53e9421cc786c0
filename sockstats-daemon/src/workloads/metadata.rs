//! Container names from each runtime's own metadata on the host, read-only.
//!
//! | Runtime | File (below the state root, `/` by default) | Name |
//! |---|---|---|
//! | Docker | `var/lib/docker/containers/<id>/config.v2.json` | `Name` (without its `/`) |
//! | Podman | `var/lib/containers/storage/<driver>-containers/containers.json` | the first of `names` |
//! | CRI-O | `run/containers/storage/<driver>-containers/<id>/userdata/config.json` (or below `var/lib`) | the pod's Kubernetes annotations |
//! | containerd | `run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/config.json` | the CRI's Kubernetes annotations, or nerdctl's `nerdctl/name` |
//!
//! A Kubernetes container is named `<namespace>/<pod>/<container>`, a pod's sandbox
//! `<namespace>/<pod>`. Rootless containers keep their metadata in their user's home and
//! are shown by their short id.
use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::container::{ContainerCgroup, Runtime};

/// Where the runtimes' metadata is: `/` on a host, a directory shaped like one in tests.
#[derive(Debug, Clone)]
pub struct ContainerMetadata {
    root: PathBuf,
}

impl ContainerMetadata {
    #[must_use]
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The name the runtime gave `container`, if its metadata is on this host.
    #[must_use]
    pub fn name_of(&self, container: &ContainerCgroup<'_>) -> Option<String> {
        let id = container.id;
        match container.runtime {
            Runtime::Docker => self.docker(id),
            Runtime::Podman => self.storage_name(id),
            Runtime::CriO => self.crio(id).or_else(|| self.storage_name(id)),
            Runtime::Containerd => self.containerd(id),
            Runtime::Unknown => self
                .containerd(id)
                .or_else(|| self.crio(id))
                .or_else(|| self.docker(id))
                .or_else(|| self.storage_name(id)),
        }
    }

    fn docker(&self, id: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Config {
            #[serde(rename = "Name", default)]
            name: String,
            #[serde(rename = "Config", default)]
            config: DockerConfig,
        }
        #[derive(Deserialize, Default)]
        struct DockerConfig {
            #[serde(rename = "Labels", default)]
            labels: Option<HashMap<String, String>>,
        }
        let path = self
            .root
            .join("var/lib/docker/containers")
            .join(id)
            .join("config.v2.json");
        let config: Config = read_json(&path)?;
        // Docker running Kubernetes' containers (cri-dockerd) labels them like CRI-O.
        if let Some(name) = config
            .config
            .labels
            .as_ref()
            .and_then(kubernetes_name_from_labels)
        {
            return Some(name);
        }
        let name = config.name.trim_start_matches('/');
        (!name.is_empty()).then(|| name.to_owned())
    }

    /// The name in containers/storage's `containers.json` (Podman's, and CRI-O's own).
    fn storage_name(&self, id: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Entry {
            id: String,
            #[serde(default)]
            names: Vec<String>,
        }
        let storage = self.root.join("var/lib/containers/storage");
        driver_dirs(&storage).into_iter().find_map(|dir| {
            let entries: Vec<Entry> = read_json(&dir.join("containers.json"))?;
            entries
                .into_iter()
                .find(|entry| entry.id == id)
                .and_then(|entry| entry.names.into_iter().next())
        })
    }

    fn crio(&self, id: &str) -> Option<String> {
        ["run/containers/storage", "var/lib/containers/storage"]
            .iter()
            .flat_map(|storage| driver_dirs(&self.root.join(storage)))
            .find_map(|dir| {
                let spec: OciSpec = read_json(&dir.join(id).join("userdata/config.json"))?;
                kubernetes_name(
                    &spec.annotations,
                    [
                        "io.kubernetes.pod.namespace",
                        "io.kubernetes.pod.name",
                        "io.kubernetes.container.name",
                    ],
                )
            })
    }

    fn containerd(&self, id: &str) -> Option<String> {
        let tasks = self
            .root
            .join("run/containerd/io.containerd.runtime.v2.task");
        let namespaces = fs::read_dir(tasks).ok()?;
        namespaces.flatten().find_map(|namespace| {
            let spec: OciSpec = read_json(&namespace.path().join(id).join("config.json"))?;
            kubernetes_name(
                &spec.annotations,
                [
                    "io.kubernetes.cri.sandbox-namespace",
                    "io.kubernetes.cri.sandbox-name",
                    "io.kubernetes.cri.container-name",
                ],
            )
            .or_else(|| spec.annotations.get("nerdctl/name").cloned())
        })
    }
}

/// An OCI runtime spec, as far as names go.
#[derive(Deserialize)]
struct OciSpec {
    #[serde(default)]
    annotations: HashMap<String, String>,
}

/// `<namespace>/<pod>/<container>` (or `<namespace>/<pod>` for a pod's sandbox, which has no
/// container name, or `POD` as CRI-O and cri-dockerd name it) from the annotations named by
/// `keys`.
fn kubernetes_name(annotations: &HashMap<String, String>, keys: [&str; 3]) -> Option<String> {
    let namespace = annotations.get(keys[0])?;
    let pod = annotations.get(keys[1])?;
    let container = annotations
        .get(keys[2])
        .filter(|c| !c.is_empty() && c.as_str() != "POD");
    Some(match container {
        Some(container) => format!("{namespace}/{pod}/{container}"),
        None => format!("{namespace}/{pod}"),
    })
}

fn kubernetes_name_from_labels(labels: &HashMap<String, String>) -> Option<String> {
    kubernetes_name(
        labels,
        [
            "io.kubernetes.pod.namespace",
            "io.kubernetes.pod.name",
            "io.kubernetes.container.name",
        ],
    )
}

/// The `<driver>-containers` directories of a containers/storage root (`overlay-containers`,
/// `vfs-containers`, …).
fn driver_dirs(storage: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(storage) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with("-containers"))
        .map(|entry| entry.path())
        .collect();
    dirs.sort();
    dirs
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            if error.kind() != std::io::ErrorKind::NotFound {
                log::debug!("cannot read container metadata {}: {error}", path.display());
            }
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => Some(value),
        Err(error) => {
            log::debug!("cannot read container metadata {}: {error}", path.display());
            None
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::workloads::container::container_of;

    pub const ID: &str = "4c01db0b339c3e6b3f1eb6d2c2f1b5ab4ac0a1a3f2e0c9d8b7a6f5e4d3c2b1a0";

    /// Writes `text` to `root/relative`, making its directories.
    pub fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn name(root: &Path, cgroup: &str) -> Option<String> {
        ContainerMetadata::new(root.to_owned()).name_of(&container_of(cgroup).unwrap())
    }

    #[test]
    fn reads_docker_and_podman_names() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            &format!("var/lib/docker/containers/{ID}/config.v2.json"),
            r#"{"ID": "x", "Name": "/web", "Config": {"Labels": null}}"#,
        );
        assert_eq!(
            name(root.path(), &format!("/docker/{ID}")).as_deref(),
            Some("web")
        );
        write(
            root.path(),
            "var/lib/containers/storage/overlay-containers/containers.json",
            &format!(
                r#"[{{"id": "{}", "names": ["other"]}}, {{"id": "{ID}", "names": ["db", "alias"], "image": "x"}}]"#,
                "1".repeat(64)
            ),
        );
        assert_eq!(
            name(root.path(), &format!("/libpod_parent/libpod-{ID}")).as_deref(),
            Some("db")
        );
        assert_eq!(
            name(
                root.path(),
                &format!("/libpod_parent/libpod-{}", "2".repeat(64))
            ),
            None
        );
    }

    #[test]
    fn names_kubernetes_containers_by_namespace_pod_and_container() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            &format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/config.json"),
            r#"{"ociVersion": "1.0.2", "annotations": {"io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-name": "cart-7d9f",
                "io.kubernetes.cri.container-name": "cart"}}"#,
        );
        let pod = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12_34.slice";
        assert_eq!(
            name(root.path(), &format!("{pod}/cri-containerd-{ID}.scope")).as_deref(),
            Some("shop/cart-7d9f/cart")
        );
        assert_eq!(
            name(root.path(), &format!("/kubepods/besteffort/pod12-34/{ID}")).as_deref(),
            Some("shop/cart-7d9f/cart")
        );

        let sandbox = "5".repeat(64);
        write(
            root.path(),
            &format!("run/containers/storage/overlay-containers/{sandbox}/userdata/config.json"),
            r#"{"annotations": {"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": "cart-7d9f",
                "io.kubernetes.container.name": "POD"}}"#,
        );
        assert_eq!(
            name(root.path(), &format!("/kubepods/pod12-34/crio-{sandbox}")).as_deref(),
            Some("shop/cart-7d9f")
        );

        let nerdctl = "6".repeat(64);
        write(
            root.path(),
            &format!("run/containerd/io.containerd.runtime.v2.task/default/{nerdctl}/config.json"),
            r#"{"annotations": {"nerdctl/name": "cache"}}"#,
        );
        assert_eq!(
            name(
                root.path(),
                &format!("/system.slice/nerdctl-{nerdctl}.scope")
            )
            .as_deref(),
            Some("cache")
        );
    }

    #[test]
    fn broken_or_missing_metadata_gives_no_name() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            &format!("var/lib/docker/containers/{ID}/config.v2.json"),
            "{not json",
        );
        assert_eq!(name(root.path(), &format!("/docker/{ID}")), None);
        assert_eq!(name(root.path(), &format!("/kubepods/pod1/{ID}")), None);
    }
}
