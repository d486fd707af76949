//! [`View`]: the in-memory server map that lookups read, and the listeners told of its
//! changes.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use pitaya_cluster::{SdListener, Server};

/// Servers by id and by type, plus listeners.
///
/// Lookups take only the read lock, so routing never waits on etcd. Changes are
/// serialised by the listener lock, which is held while listeners are told: a listener
/// added concurrently therefore sees every server exactly once, either in its replay or
/// as an event, never both and never neither.
#[derive(Default)]
pub(crate) struct View {
    servers: RwLock<Servers>,
    listeners: Mutex<Vec<Arc<dyn SdListener>>>,
}

#[derive(Default)]
struct Servers {
    by_id: HashMap<String, Arc<Server>>,
    by_type: HashMap<String, HashMap<String, Arc<Server>>>,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl View {
    pub(crate) fn server(&self, id: &str) -> Option<Arc<Server>> {
        self.read(|s| s.by_id.get(id).cloned())
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.read(|s| s.by_id.contains_key(id))
    }

    pub(crate) fn servers_by_type(&self, server_type: &str) -> Vec<Arc<Server>> {
        self.read(|s| {
            s.by_type.get(server_type).map(|m| m.values().cloned().collect()).unwrap_or_default()
        })
    }

    pub(crate) fn servers(&self) -> Vec<Arc<Server>> {
        self.read(|s| s.by_id.values().cloned().collect())
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.read(|s| s.by_id.keys().cloned().collect())
    }

    /// Adds `server` unless its id is known, and tells the listeners. Returns whether it
    /// was added: spec §5.4, a record for a known id is ignored.
    pub(crate) fn add(&self, server: Arc<Server>) -> bool {
        let listeners = lock(&self.listeners);
        let added = self.write(|s| {
            if s.by_id.contains_key(&server.id) {
                return false;
            }
            s.by_id.insert(server.id.clone(), server.clone());
            s.by_type
                .entry(server.server_type.clone())
                .or_default()
                .insert(server.id.clone(), server.clone());
            true
        });
        if added {
            tracing::debug!(id = %server.id, server_type = %server.server_type, "sd: server added");
            for l in listeners.iter() {
                notify(|| l.server_added(&server));
            }
        }
        added
    }

    /// Removes the server with `id`, if known, and tells the listeners.
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Server>> {
        let listeners = lock(&self.listeners);
        let removed = self.write(|s| {
            let server = s.by_id.remove(id)?;
            if let Some(of_type) = s.by_type.get_mut(&server.server_type) {
                of_type.remove(id);
                if of_type.is_empty() {
                    s.by_type.remove(&server.server_type);
                }
            }
            Some(server)
        });
        if let Some(server) = &removed {
            tracing::debug!(id = %server.id, server_type = %server.server_type, "sd: server removed");
            for l in listeners.iter() {
                notify(|| l.server_removed(server));
            }
        }
        removed
    }

    /// Tells `listener` about every known server, then adds it.
    pub(crate) fn add_listener(&self, listener: Arc<dyn SdListener>) {
        let mut listeners = lock(&self.listeners);
        for server in self.servers() {
            notify(|| listener.server_added(&server));
        }
        listeners.push(listener);
    }

    fn read<R>(&self, f: impl FnOnce(&Servers) -> R) -> R {
        f(&self.servers.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<R>(&self, f: impl FnOnce(&mut Servers) -> R) -> R {
        f(&mut self.servers.write().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Runs one listener callback. A panicking listener is logged and skipped: it must not
/// take the discovery task, and with it every later update, down.
fn notify(f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!("sd: a discovery listener panicked; event skipped for it");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl SdListener for Recorder {
        fn server_added(&self, server: &Arc<Server>) {
            lock(&self.0).push(format!("+{}", server.id));
        }
        fn server_removed(&self, server: &Arc<Server>) {
            lock(&self.0).push(format!("-{}", server.id));
        }
    }

    fn server(id: &str, server_type: &str) -> Arc<Server> {
        let mut s = Server::new(server_type, false, BTreeMap::new());
        s.id = id.to_owned();
        Arc::new(s)
    }

    #[test]
    fn known_ids_are_ignored_and_types_indexed() {
        let view = View::default();
        assert!(view.add(server("a", "game")));
        assert!(!view.add(server("a", "connector")));
        assert!(view.add(server("b", "game")));
        assert_eq!(view.server("a").unwrap().server_type, "game");
        assert_eq!(view.servers_by_type("game").len(), 2);
        assert!(view.servers_by_type("connector").is_empty());
        assert_eq!(view.remove("a").unwrap().id, "a");
        assert!(view.remove("a").is_none());
        assert_eq!(view.servers_by_type("game").len(), 1);
        assert_eq!(view.servers().len(), 1);
    }

    #[test]
    fn listeners_get_a_replay_then_events() {
        let view = View::default();
        view.add(server("a", "game"));
        let rec = Arc::new(Recorder::default());
        view.add_listener(rec.clone());
        view.add(server("b", "game"));
        view.add(server("b", "game"));
        view.remove("a");
        view.remove("zz");
        assert_eq!(*lock(&rec.0), ["+a", "+b", "-a"]);
    }

    #[test]
    fn a_panicking_listener_does_not_stop_the_others() {
        struct Panics;
        impl SdListener for Panics {
            fn server_added(&self, _: &Arc<Server>) {
                panic!("listener bug");
            }
            fn server_removed(&self, _: &Arc<Server>) {}
        }
        let view = View::default();
        let rec = Arc::new(Recorder::default());
        view.add_listener(Arc::new(Panics));
        view.add_listener(rec.clone());
        view.add(server("a", "game"));
        assert_eq!(*lock(&rec.0), ["+a"]);
    }
}
