//! Destinations: the classes (`host`, `private`, `internet`) and the config's named networks
//! a socket's bytes are split by. The kernel charges each packet to the destination of its
//! remote address ([`prefixes`] is what the daemon writes into its trie); this module gives
//! the ids stable names ([`registry`]) so totals pinned by an earlier daemon keep theirs.
pub mod prefixes;
pub mod registry;

pub use prefixes::prefixes;
pub use registry::{DestinationNames, RegistryError};

/// The name of the destination of bytes no single remote address stands for: payload moved
/// before the socket's first packet, and traffic beyond a socket's slots.
pub const UNKNOWN_DESTINATION: &str = ":unknown";
