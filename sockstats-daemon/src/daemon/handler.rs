//! One request in, one reply line out. Blocking: it reads and writes BPF maps.
use std::os::fd::{AsFd, OwnedFd};

use sockstats_common::protocol::{
    encode_error, encode_ok, ByteCounts, GetReply, LabelInfo, LabelReply, LabelsReply, Request,
    SocketInfo, StatusReply, UnlabelReply,
};
use sockstats_common::{label_name::UNLABELED_NAME, Counter, UNLABELED_ID};

use super::state::Daemon;
use crate::{
    attribution, routes,
    sys::socket_info::{self, InetSocket},
};

/// Handles `request` with the `fds` that came with it, and closes them. Returns the reply line.
#[must_use]
pub fn handle(daemon: &Daemon, request: Request, fds: Vec<OwnedFd>) -> String {
    let result = match request {
        Request::Label { label } => label_sockets(daemon, &label, &fds),
        Request::Unlabel => unlabel_sockets(daemon, &fds),
        other if !fds.is_empty() => Err(format!(
            "op {:?} does not take fds; the {} passed fd(s) were closed",
            op_name(&other),
            fds.len()
        )),
        Request::Get => get(daemon),
        Request::Labels => Ok(labels(daemon)),
        Request::Status => Ok(status(daemon)),
    };
    drop(fds);
    result.unwrap_or_else(|error| encode_error(&error))
}

fn op_name(request: &Request) -> &'static str {
    match request {
        Request::Label { .. } => "label",
        Request::Unlabel => "unlabel",
        Request::Get => "get",
        Request::Labels => "labels",
        Request::Status => "status",
    }
}

/// Inspects every passed fd; all must be inet sockets, or nothing is done.
fn inspect_all(fds: &[OwnedFd], op: &str) -> Result<Vec<InetSocket>, String> {
    if fds.is_empty() {
        return Err(format!(
            "{op} needs the socket fds passed with the request (SCM_RIGHTS in the same sendmsg); none arrived"
        ));
    }
    fds.iter()
        .enumerate()
        .map(|(index, fd)| {
            socket_info::inspect(fd.as_fd())
                .map_err(|error| format!("fd {} of {} passed: {error}", index + 1, fds.len()))
        })
        .collect()
}

fn socket_info_of(socket: &InetSocket) -> SocketInfo {
    SocketInfo {
        cookie: socket.cookie,
        family: socket.family_name().to_owned(),
        protocol: socket.protocol_name(),
    }
}

fn label_sockets(daemon: &Daemon, label: &str, fds: &[OwnedFd]) -> Result<String, String> {
    let sockets = inspect_all(fds, "label")?;
    if label == UNLABELED_NAME {
        // Putting a socket under `unlabeled` is taking its label off.
        remove_labels(daemon, &sockets)?;
        return Ok(encode_ok(&LabelReply {
            label: label.to_owned(),
            label_id: UNLABELED_ID,
            sockets: sockets.iter().map(socket_info_of).collect(),
        }));
    }
    let label_id = daemon
        .registry
        .lock()
        .expect("registry lock")
        .get_or_create(label)
        .map_err(|error| error.to_string())?;
    let mut kernel = daemon.kernel.lock().expect("kernel lock");
    // The passed fds keep the sockets open until we return, so none can be released (and its
    // label entry leaked) between these writes and the daemon closing the fds.
    let cookies: Vec<u64> = sockets.iter().map(|s| s.cookie).collect();
    kernel.set_labels_all_or_nothing(&cookies, label_id).map_err(|error| {
        format!("cannot label the sockets: {error} (too many live labeled sockets?); none was labeled")
    })?;
    log::debug!(
        "labeled {} socket(s) {label:?} (id {label_id})",
        sockets.len()
    );
    Ok(encode_ok(&LabelReply {
        label: label.to_owned(),
        label_id,
        sockets: sockets.iter().map(socket_info_of).collect(),
    }))
}

fn remove_labels(daemon: &Daemon, sockets: &[InetSocket]) -> Result<(), String> {
    let mut kernel = daemon.kernel.lock().expect("kernel lock");
    for socket in sockets {
        kernel
            .remove_label(socket.cookie)
            .map_err(|error| format!("cannot unlabel socket {}: {error}", socket.cookie))?;
    }
    Ok(())
}

fn unlabel_sockets(daemon: &Daemon, fds: &[OwnedFd]) -> Result<String, String> {
    let sockets = inspect_all(fds, "unlabel")?;
    remove_labels(daemon, &sockets)?;
    Ok(encode_ok(&UnlabelReply {
        sockets: sockets.iter().map(socket_info_of).collect(),
    }))
}

fn get(daemon: &Daemon) -> Result<String, String> {
    let snapshot = daemon
        .kernel
        .lock()
        .expect("kernel lock")
        .snapshot()
        .map_err(|error| format!("cannot read the kernel maps: {error}"))?;
    let per_label = attribution::per_label(&snapshot);
    let registry = daemon.registry.lock().expect("registry lock");
    let mut reply = GetReply {
        current_interface: routes::current_interface(),
        overflow: to_counts(snapshot.overflow()),
        ..GetReply::default()
    };
    for (_, name) in registry.iter() {
        reply.stats.insert(name.to_owned(), ByteCounts::default());
    }
    for (id, totals) in per_label {
        // Ids the registry does not know (a state dir reset under live pins) stay visible as
        // "#<id>": '#' is not allowed in label names, so this never clashes with one.
        let name = registry
            .name_of(id)
            .map_or_else(|| format!("#{id}"), str::to_owned);
        reply.stats.insert(name, to_counts(totals));
    }
    Ok(encode_ok(&reply))
}

fn to_counts(totals: sockstats_common::Totals) -> ByteCounts {
    ByteCounts {
        tx_bytes: totals.tx_bytes,
        rx_bytes: totals.rx_bytes,
    }
}

fn labels(daemon: &Daemon) -> String {
    let registry = daemon.registry.lock().expect("registry lock");
    let labels = registry
        .iter()
        .map(|(id, name)| LabelInfo {
            name: name.to_owned(),
            id,
        })
        .collect();
    encode_ok(&LabelsReply { labels })
}

fn status(daemon: &Daemon) -> String {
    let (live_sockets, counters) = {
        let kernel = daemon.kernel.lock().expect("kernel lock");
        (kernel.live_sockets(), kernel.counters().unwrap_or_default())
    };
    let counters = Counter::ALL
        .iter()
        .zip(counters)
        .map(|(counter, value)| (counter.name().to_owned(), value))
        .collect();
    let info = &daemon.info;
    encode_ok(&StatusReply {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        attached: !info.programs.is_empty() && info.programs.iter().all(|p| p.prog_id.is_some()),
        programs: info.programs.clone(),
        cgroup_root: info.cgroup_root.display().to_string(),
        bpffs_dir: info.bpffs_dir.display().to_string(),
        state_dir: info.state_dir.display().to_string(),
        live_sockets,
        counters,
    })
}
