//! In-process implementations of the traits: several servers of one process form a
//! cluster without etcd or NATS. For unit tests and single-process setups.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};

use pitaya_core::{BoxFuture, Context, Error};
use pitaya_protos::protos::{BindMsg, KickMsg, Push, Request, Response};

use crate::{
    RpcClient, RpcHandler, RpcServer, SdListener, Server, ServiceDiscovery, UserSubscription,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The shared medium of an in-process cluster: the server registry and the RPC
/// endpoints. Cheap to clone.
#[derive(Clone, Default)]
pub struct MemoryCluster(Arc<Shared>);

#[derive(Default)]
struct Shared {
    servers: Mutex<BTreeMap<String, Arc<Server>>>,
    listeners: Mutex<Vec<Weak<dyn SdListener>>>,
    handlers: Mutex<HashMap<String, Arc<dyn RpcHandler>>>,
    /// (frontend type, uid) -> subscribed server ids with a count each.
    users: Mutex<HashMap<(String, String), BTreeMap<String, usize>>>,
}

impl MemoryCluster {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Discovery, RPC client and RPC server for `server` in this cluster.
    pub fn join(&self, server: Server) -> (MemoryDiscovery, MemoryRpcClient, MemoryRpcServer) {
        let server = Arc::new(server);
        (
            MemoryDiscovery {
                cluster: self.clone(),
                me: server.clone(),
                listeners: Mutex::default(),
            },
            MemoryRpcClient { cluster: self.clone(), me: server.clone() },
            MemoryRpcServer { cluster: self.clone(), me: server },
        )
    }

    fn notify(&self, server: &Arc<Server>, added: bool) {
        let listeners: Vec<_> = lock(&self.0.listeners).iter().filter_map(Weak::upgrade).collect();
        for l in listeners {
            if added {
                l.server_added(server);
            } else {
                l.server_removed(server);
            }
        }
    }

    fn handler(&self, id: &str) -> Option<Arc<dyn RpcHandler>> {
        lock(&self.0.handlers).get(id).cloned()
    }
}

/// [`ServiceDiscovery`] over a [`MemoryCluster`].
pub struct MemoryDiscovery {
    cluster: MemoryCluster,
    me: Arc<Server>,
    listeners: Mutex<Vec<Arc<dyn SdListener>>>,
}

impl ServiceDiscovery for MemoryDiscovery {
    fn this_server(&self) -> &Arc<Server> {
        &self.me
    }

    fn start(&self) -> BoxFuture<'_, Result<(), Error>> {
        lock(&self.cluster.0.servers).insert(self.me.id.clone(), self.me.clone());
        self.cluster.notify(&self.me, true);
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        let removed = lock(&self.cluster.0.servers).remove(&self.me.id);
        if let Some(s) = removed {
            self.cluster.notify(&s, false);
        }
        Box::pin(async {})
    }

    fn server(&self, id: &str) -> Option<Arc<Server>> {
        lock(&self.cluster.0.servers).get(id).cloned()
    }

    fn servers_by_type(&self, server_type: &str) -> Vec<Arc<Server>> {
        lock(&self.cluster.0.servers)
            .values()
            .filter(|s| s.server_type == server_type)
            .cloned()
            .collect()
    }

    fn servers(&self) -> Vec<Arc<Server>> {
        lock(&self.cluster.0.servers).values().cloned().collect()
    }

    fn add_listener(&self, listener: Arc<dyn SdListener>) {
        for s in self.servers() {
            listener.server_added(&s);
        }
        let weak: Weak<dyn SdListener> = Arc::downgrade(&listener);
        lock(&self.cluster.0.listeners).push(weak);
        // The cluster holds listeners weakly; this discovery keeps them alive.
        lock(&self.listeners).push(listener);
    }
}

/// [`RpcClient`] over a [`MemoryCluster`]: calls the target's handler directly.
pub struct MemoryRpcClient {
    cluster: MemoryCluster,
    me: Arc<Server>,
}

impl RpcClient for MemoryRpcClient {
    fn call(
        &self,
        target: &Server,
        mut ctx: Context,
        mut req: Request,
    ) -> BoxFuture<'_, Result<Response, Error>> {
        let handler = self.cluster.handler(&target.id);
        let timeout =
            crate::context::effective_timeout(&mut ctx, std::time::Duration::from_secs(5));
        req.metadata = ctx.to_bytes();
        let route = req.msg.as_ref().map(|m| m.route.clone()).unwrap_or_default();
        let (target_id, me) = (target.id.clone(), self.me.id.clone());
        Box::pin(async move {
            let timeout = timeout?;
            let handler = handler.ok_or_else(|| {
                Error::unknown("nats: no responders available for request")
                    .with_source(crate::Unreachable::new(crate::UnreachableKind::NoResponders))
            })?;
            tokio::time::timeout(timeout, handler.handle_request(req))
                .await
                .map_err(|_| crate::timeout_error(timeout, &route, &me, &target_id))
        })
    }

    fn send_push<'a>(
        &'a self,
        frontend_type: &'a str,
        _frontend_id: Option<&'a str>,
        push: Push,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let targets = self.user_handlers(frontend_type, &push.uid);
        Box::pin(async move {
            for h in targets {
                let _ = h.handle_push(push.clone()).await;
            }
            Ok(())
        })
    }

    fn send_kick<'a>(
        &'a self,
        frontend_type: &'a str,
        kick: KickMsg,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let targets = self.user_handlers(frontend_type, &kick.user_id);
        Box::pin(async move {
            for h in targets {
                let _ = h.handle_kick(kick.clone()).await;
            }
            Ok(())
        })
    }

    fn broadcast_session_bind<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let peers: Vec<_> = lock(&self.cluster.0.servers)
            .values()
            .filter(|s| s.server_type == self.me.server_type)
            .filter_map(|s| self.cluster.handler(&s.id))
            .collect();
        let msg = BindMsg { uid: uid.to_owned(), fid: self.me.id.clone() };
        Box::pin(async move {
            for h in peers {
                let _ = h.handle_bind(msg.clone()).await;
            }
            Ok(())
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

impl MemoryRpcClient {
    fn user_handlers(&self, frontend_type: &str, uid: &str) -> Vec<Arc<dyn RpcHandler>> {
        let key = (frontend_type.to_owned(), uid.to_owned());
        let ids: Vec<String> = lock(&self.cluster.0.users)
            .get(&key)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        ids.iter().filter_map(|id| self.cluster.handler(id)).collect()
    }
}

/// [`RpcServer`] over a [`MemoryCluster`].
pub struct MemoryRpcServer {
    cluster: MemoryCluster,
    me: Arc<Server>,
}

impl RpcServer for MemoryRpcServer {
    fn start(&self, handler: Arc<dyn RpcHandler>) -> BoxFuture<'_, Result<(), Error>> {
        lock(&self.cluster.0.handlers).insert(self.me.id.clone(), handler);
        Box::pin(async { Ok(()) })
    }

    fn subscribe_user<'a>(
        &'a self,
        uid: &'a str,
    ) -> BoxFuture<'a, Result<UserSubscription, Error>> {
        let key = (self.me.server_type.clone(), uid.to_owned());
        *lock(&self.cluster.0.users)
            .entry(key.clone())
            .or_default()
            .entry(self.me.id.clone())
            .or_default() += 1;
        let cluster = self.cluster.clone();
        let id = self.me.id.clone();
        Box::pin(async move {
            Ok(UserSubscription::new(move || {
                let mut users = lock(&cluster.0.users);
                if let Some(ids) = users.get_mut(&key) {
                    if let Some(n) = ids.get_mut(&id) {
                        *n -= 1;
                        if *n == 0 {
                            ids.remove(&id);
                        }
                    }
                    if ids.is_empty() {
                        users.remove(&key);
                    }
                }
            }))
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        lock(&self.cluster.0.handlers).remove(&self.me.id);
        Box::pin(async {})
    }
}
