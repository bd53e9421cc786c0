//! Names people recognise for cgroups: the systemd unit ([`unit`]) and the container
//! ([`container`], named from the runtimes' own metadata by [`metadata`]) each cgroup is in,
//! kept by id in a [`catalog`] that outlives the cgroups, for `get --by unit|container` and for
//! the rules that name a unit or a container.
pub mod catalog;
pub mod container;
pub mod metadata;
pub mod unit;

pub use catalog::{CgroupNames, Workloads};
