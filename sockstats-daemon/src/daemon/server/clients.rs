//! The open client connections: who holds them, which are idle, and who gets in.
//!
//! At most `max_clients` connections at once, and at most `max_clients_per_uid` of one
//! non-root uid. Root is always served: when every slot is taken and root connects, the
//! connection of the non-root uid holding the most connections that has been idle longest is
//! closed to make room (the uid's other connections stay). This is a leaf lock: nothing else
//! is locked while it is held.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Instant,
};

use tokio::sync::Notify;

use super::closing::Closing;

/// Numbers connections, for the temporary rules that belong to one.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
struct Entry {
    uid: u32,
    /// Since when it waits for a request with nothing half-read (`None`: busy).
    idle_since: Option<Instant>,
    /// Told to close to make room for root.
    evicted: bool,
    evict: Arc<Notify>,
}

/// The open connections and the limits on them.
#[derive(Debug)]
pub struct Clients {
    max_total: usize,
    max_per_uid: usize,
    open: Mutex<HashMap<u64, Entry>>,
}

impl Clients {
    #[must_use]
    pub fn new(max_clients: usize, max_per_uid: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_clients,
            max_per_uid,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets a connection of `uid` in, or says why not. Root gets in even when every slot is
    /// taken, by evicting another uid's connection.
    pub fn admit(self: &Arc<Self>, uid: u32) -> Result<ClientSlot, Closing> {
        let mut open = self.lock();
        if uid != 0 && open.values().filter(|e| e.uid == uid).count() >= self.max_per_uid {
            return Err(Closing::UidLimit {
                uid,
                max: self.max_per_uid,
            });
        }
        let counted = open.values().filter(|e| !e.evicted).count();
        if counted >= self.max_total {
            let victim = if uid == 0 { victim(&open) } else { None };
            let Some(victim) = victim else {
                return Err(Closing::TooManyClients {
                    max: self.max_total,
                });
            };
            let entry = open.get_mut(&victim).expect("the victim is open");
            entry.evicted = true;
            entry.evict.notify_one();
            log::info!(
                "closing connection {victim} of uid {} (it holds the most) to serve root: all {} slots are taken",
                entry.uid,
                self.max_total
            );
        }
        let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        open.insert(
            connection,
            Entry {
                uid,
                idle_since: Some(Instant::now()),
                evicted: false,
                evict: Arc::clone(&evict),
            },
        );
        Ok(ClientSlot {
            connection,
            evict,
            clients: Arc::clone(self),
        })
    }

    fn set_idle(&self, connection: u64, idle: bool) {
        if let Some(entry) = self.lock().get_mut(&connection) {
            match (idle, entry.idle_since) {
                (true, None) => entry.idle_since = Some(Instant::now()),
                (false, Some(_)) => entry.idle_since = None,
                _ => {}
            }
        }
    }

    /// Open connections per uid (evicted ones that have not closed yet included).
    #[must_use]
    pub fn per_uid(&self) -> HashMap<u32, usize> {
        let mut counts = HashMap::new();
        for entry in self.lock().values() {
            *counts.entry(entry.uid).or_default() += 1;
        }
        counts
    }
}

/// The connection to close for root: of the non-root uid with the most connections (ties: the
/// one idle longest), its connection idle longest (or, if none is idle, any: it closes after
/// its current request).
fn victim(open: &HashMap<u64, Entry>) -> Option<u64> {
    let candidates = || open.iter().filter(|(_, e)| e.uid != 0 && !e.evicted);
    let mut per_uid: HashMap<u32, (usize, Option<Instant>)> = HashMap::new();
    for (_, entry) in candidates() {
        let (count, oldest) = per_uid.entry(entry.uid).or_default();
        *count += 1;
        *oldest = match (*oldest, entry.idle_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    // Most connections first; among those, the one with the connection idle longest (an idle
    // one before none); then the lowest uid.
    let (uid, _) = per_uid.into_iter().max_by_key(|(uid, (count, oldest))| {
        (
            *count,
            oldest.map(std::cmp::Reverse),
            std::cmp::Reverse(*uid),
        )
    })?;
    candidates()
        .filter(|(_, e)| e.uid == uid)
        .min_by_key(|(id, e)| (e.idle_since.is_none(), e.idle_since, **id))
        .map(|(id, _)| *id)
}

/// One connection's place among the [`Clients`], given back on drop.
#[derive(Debug)]
pub struct ClientSlot {
    connection: u64,
    evict: Arc<Notify>,
    clients: Arc<Clients>,
}

impl ClientSlot {
    /// The connection's number (unique for the daemon's lifetime).
    #[must_use]
    pub fn connection(&self) -> u64 {
        self.connection
    }

    /// The connection waits for a request with nothing half-read (or stops waiting).
    pub fn set_idle(&self, idle: bool) {
        self.clients.set_idle(self.connection, idle);
    }

    /// Returns when the connection must close to make room for root.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.clients.lock().remove(&self.connection);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn limits_per_uid_and_in_all_but_root_always_gets_in() {
        let clients = Clients::new(4, 2);
        let a1 = clients.admit(1000).unwrap();
        let _a2 = clients.admit(1000).unwrap();
        assert!(matches!(
            clients.admit(1000),
            Err(Closing::UidLimit { uid: 1000, max: 2 })
        ));
        std::thread::sleep(Duration::from_millis(2));
        let b1 = clients.admit(1001).unwrap();
        let _b2 = clients.admit(1001).unwrap();
        assert!(matches!(
            clients.admit(1002),
            Err(Closing::TooManyClients { max: 4 })
        ));
        // b1 is busy; a1 has been idle longest: of the two uids holding the most, a's
        // connection goes.
        b1.set_idle(false);
        let root = clients.admit(0).unwrap();
        assert_eq!(clients.per_uid()[&0], 1);
        let evicted = clients.lock()[&a1.connection()].evicted;
        assert!(evicted);
        // Still full for others; root again evicts (now uid 1001 holds the most).
        assert!(matches!(
            clients.admit(1002),
            Err(Closing::TooManyClients { .. })
        ));
        let _root2 = clients.admit(0).unwrap();
        let open = clients.lock();
        let evicted: Vec<u32> = open.values().filter(|e| e.evicted).map(|e| e.uid).collect();
        assert_eq!(evicted.len(), 2);
        assert!(
            evicted.contains(&1000) && evicted.contains(&1001),
            "{evicted:?}"
        );
        drop(open);
        drop(a1);
        assert_eq!(clients.per_uid().get(&1000), Some(&1));
        drop(root);
    }

    #[test]
    fn root_is_refused_only_when_root_holds_every_slot() {
        let clients = Clients::new(2, 2);
        let _r1 = clients.admit(0).unwrap();
        let _r2 = clients.admit(0).unwrap();
        assert!(matches!(
            clients.admit(0),
            Err(Closing::TooManyClients { max: 2 })
        ));
    }

    #[tokio::test]
    async fn the_evicted_connection_is_told() {
        let clients = Clients::new(1, 1);
        let user = clients.admit(1000).unwrap();
        let _root = clients.admit(0).unwrap();
        tokio::time::timeout(Duration::from_secs(1), user.evicted())
            .await
            .expect("the user's connection is told to close");
    }
}
