//! One request in, one reply line out. Blocking: it reads and writes BPF maps.
use std::{
    collections::{BTreeMap, BTreeSet},
    os::fd::{AsFd, OwnedFd},
};

use sockstats_common::protocol::{
    encode_ok, ByteCounts, DebugReply, ErrorCode, GetInterfacesReply, GetReply, Grouping,
    LabelInfo, LabelReply, LabelsReply, ProgramDebug, Request, SocketInfo, StatusReply,
    UnlabelReply, WireCounts,
};
use sockstats_common::{label_name::UNLABELED_NAME, Counter, UNLABELED_ID};

use super::{
    refusal::{Peer, Refusal},
    rule_ops,
    state::Daemon,
    views,
};
use crate::{
    attribution, interfaces,
    sys::socket_info::{self, InetSocket},
};

/// Handles `request` from `peer` with the `fds` that came with it, and closes them. Returns
/// the reply line.
#[must_use]
pub fn handle(daemon: &Daemon, peer: Peer, request: Request, fds: Vec<OwnedFd>) -> String {
    let result: Result<String, Refusal> = match request {
        Request::Label { label } => label_sockets(daemon, peer, &label, &fds),
        Request::Unlabel => unlabel_sockets(daemon, &fds),
        other if !fds.is_empty() => Err(Refusal::new(
            ErrorCode::BadRequest,
            format!(
                "op {:?} does not take fds; the {} passed fd(s) were closed",
                other.op(),
                fds.len()
            ),
        )),
        Request::Get => get(daemon).map_err(Refusal::from),
        Request::GetInterfaces => get_interfaces(daemon).map_err(Refusal::from),
        Request::GetValidation => super::validation::get_validation(daemon).map_err(Refusal::from),
        Request::GetBy { by } => get_by(daemon, by).map_err(Refusal::from),
        Request::Labels => Ok(labels(daemon)),
        Request::Status => Ok(status(daemon)),
        Request::DebugInfo => Ok(debug_info(daemon)),
        Request::AddRule {
            selector,
            label,
            temporary,
        } => rule_ops::add_rule(daemon, peer, &selector, &label, temporary),
        Request::RemoveRule { selector } => rule_ops::remove_rule(daemon, peer, &selector),
        Request::Rules => Ok(rule_ops::list_rules(daemon)),
    };
    drop(fds);
    result.unwrap_or_else(|refusal| refusal.encode())
}

/// Inspects every passed fd; all must be inet sockets, or nothing is done.
fn inspect_all(fds: &[OwnedFd], op: &str) -> Result<Vec<InetSocket>, Refusal> {
    if fds.is_empty() {
        return Err(Refusal::new(ErrorCode::NotASocket, format!(
            "{op} needs the socket fds passed with the request (SCM_RIGHTS in the same sendmsg); none arrived"
        )));
    }
    fds.iter()
        .enumerate()
        .map(|(index, fd)| {
            socket_info::inspect(fd.as_fd()).map_err(|error| {
                Refusal::new(
                    ErrorCode::NotASocket,
                    format!("fd {} of {} passed: {error}", index + 1, fds.len()),
                )
            })
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

fn label_sockets(
    daemon: &Daemon,
    peer: Peer,
    label: &str,
    fds: &[OwnedFd],
) -> Result<String, Refusal> {
    let sockets = inspect_all(fds, "label")?;
    if label == UNLABELED_NAME {
        // Putting a socket under `unlabeled` is taking its label off.
        relabel_sockets(daemon, fds, &sockets, UNLABELED_ID)?;
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
        .get_or_create_for(label, peer.uid)
        .map_err(Refusal::from)?;
    relabel_sockets(daemon, fds, &sockets, label_id)?;
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

/// Puts every socket of `fds` (inspected as `sockets`) under `label_id`, or none of them: the
/// kernel moves each one's bytes. The passed fds keep the sockets open until we return.
fn relabel_sockets(
    daemon: &Daemon,
    fds: &[OwnedFd],
    sockets: &[InetSocket],
    label_id: u32,
) -> Result<(), Refusal> {
    let targets: Vec<(std::os::fd::BorrowedFd<'_>, u64)> = fds
        .iter()
        .zip(sockets)
        .map(|(fd, socket)| (fd.as_fd(), socket.cookie))
        .collect();
    let kernel = daemon.kernel.lock().expect("kernel lock");
    kernel
        .relabel_all_or_nothing(&targets, label_id)
        .map_err(|error| {
            Refusal::new(
                ErrorCode::Failed,
                format!("cannot label the sockets: {error}; none was labeled"),
            )
        })
}

fn unlabel_sockets(daemon: &Daemon, fds: &[OwnedFd]) -> Result<String, Refusal> {
    let sockets = inspect_all(fds, "unlabel")?;
    relabel_sockets(daemon, fds, &sockets, UNLABELED_ID)?;
    Ok(encode_ok(&UnlabelReply {
        sockets: sockets.iter().map(socket_info_of).collect(),
    }))
}

/// Re-reads interface names and the default route over rtnetlink.
fn current_interface(daemon: &Daemon) -> Option<String> {
    let mut names = daemon.interfaces.lock().expect("interfaces lock");
    names.refresh();
    interfaces::current_interface(&names)
}

fn get(daemon: &Daemon) -> Result<String, String> {
    let snapshot = views::snapshot(daemon)?;
    let per_label = attribution::per_label(&snapshot);
    let current_interface = current_interface(daemon);
    let registry = daemon.registry.lock().expect("registry lock");
    let mut reply = GetReply {
        current_interface,
        overflow: to_counts(snapshot.overflow()),
        ..GetReply::default()
    };
    for (_, name) in registry.iter() {
        reply.stats.insert(name.to_owned(), ByteCounts::default());
    }
    for (id, totals) in per_label {
        reply
            .stats
            .insert(views::label_name(&registry, id), to_counts(totals));
    }
    Ok(encode_ok(&reply))
}

fn get_by(daemon: &Daemon, by: Grouping) -> Result<String, String> {
    let snapshot = views::snapshot(daemon)?;
    let live = if by == Grouping::Process {
        views::live_sockets(daemon)?
    } else {
        Vec::new()
    };
    let groups = crate::grouping::group(&snapshot, by, &live);
    let stats = views::group_names(daemon, groups);
    Ok(encode_ok(&sockstats_common::protocol::GetByReply {
        by,
        stats,
        covers: crate::grouping::covers(by).to_owned(),
    }))
}

fn get_interfaces(daemon: &Daemon) -> Result<String, String> {
    let named = views::named_totals(daemon)?;
    let interface_table = daemon.interfaces.lock().expect("interfaces lock");
    let mut reply = GetInterfacesReply {
        current_interface: interfaces::current_interface(&interface_table),
        ..GetInterfacesReply::default()
    };
    let mut interface_names: BTreeSet<String> =
        interface_table.host_link_names().into_iter().collect();
    for (label, by_interface) in named.labels {
        let stats = reply.stats.entry(label.clone()).or_default();
        let wire = reply.wire.entry(label).or_default();
        for (name, counters) in by_interface {
            stats
                .tx_bytes_by_interface
                .insert(name.clone(), counters.payload.tx_bytes);
            stats
                .rx_bytes_by_interface
                .insert(name.clone(), counters.payload.rx_bytes);
            wire.insert(
                name.clone(),
                WireCounts {
                    tx_bytes: counters.wire_bytes.tx_bytes,
                    rx_bytes: counters.wire_bytes.rx_bytes,
                    tx_packets: counters.wire_packets.tx_packets,
                    rx_packets: counters.wire_packets.rx_packets,
                },
            );
            interface_names.insert(name);
        }
    }
    reply.interfaces = interface_names.into_iter().collect();
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
    let label_ids = views::label_ids(daemon);
    let (live_sockets, counters) = {
        let kernel = daemon.kernel.lock().expect("kernel lock");
        (
            kernel.live_sockets(label_ids),
            kernel.counters().unwrap_or_default(),
        )
    };
    let counters = counters_by_name(counters);
    let info = &daemon.info;
    encode_ok(&StatusReply {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        attached: !info.programs.is_empty() && info.programs.iter().all(|p| p.prog_id.is_some()),
        programs: info.programs.clone(),
        payload_hooks: info.payload_hooks.clone(),
        kernel_limits: info.kernel_limits.clone(),
        cgroup_root: info.cgroup_root.display().to_string(),
        bpffs_dir: info.bpffs_dir.display().to_string(),
        state_dir: info.state_dir.display().to_string(),
        live_sockets,
        counters,
    })
}

pub(crate) fn counters_by_name(counters: [u64; Counter::COUNT as usize]) -> BTreeMap<String, u64> {
    Counter::ALL
        .iter()
        .zip(counters)
        .map(|(c, v)| (c.name().to_owned(), v))
        .collect()
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
}

fn debug_info(daemon: &Daemon) -> String {
    let label_ids = views::label_ids(daemon);
    let (counters, maps, live_sockets) = {
        let kernel = daemon.kernel.lock().expect("kernel lock");
        (
            kernel.counters().unwrap_or_default(),
            kernel.fill(),
            kernel.live_sockets(label_ids),
        )
    };
    let loaded: Vec<_> = aya::programs::loaded_programs().flatten().collect();
    let programs = daemon
        .info
        .programs
        .iter()
        .map(|program| {
            let info = program
                .prog_id
                .and_then(|id| loaded.iter().find(|p| p.id() == id));
            let run_count = info.map_or(0, aya::programs::ProgramInfo::run_count);
            let run_time_ns = info.map_or(0, |p| {
                u64::try_from(p.run_time().as_nanos()).unwrap_or(u64::MAX)
            });
            #[expect(clippy::cast_precision_loss, reason = "an average for display")]
            let average_ns = (run_count > 0).then(|| run_time_ns as f64 / run_count as f64);
            ProgramDebug {
                name: program.name.clone(),
                hook: program.hook.clone(),
                prog_id: program.prog_id,
                run_count,
                run_time_ns,
                average_ns,
            }
        })
        .collect();
    let info = &daemon.info;
    encode_ok(&DebugReply {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
        uptime_seconds: info.started.elapsed().as_secs_f64(),
        bpf_stats_enabled: read_trimmed("/proc/sys/kernel/bpf_stats_enabled").as_deref()
            == Some("1"),
        payload_hooks: daemon.info.payload_hooks.clone(),
        kernel_limits: daemon.info.kernel_limits.clone(),
        programs,
        maps,
        counters: counters_by_name(counters),
        live_sockets,
        labels: daemon.registry.lock().expect("registry lock").len() as u64,
        socket: info.socket.display().to_string(),
        cgroup_root: info.cgroup_root.display().to_string(),
        bpffs_dir: info.bpffs_dir.display().to_string(),
        state_dir: info.state_dir.display().to_string(),
    })
}
