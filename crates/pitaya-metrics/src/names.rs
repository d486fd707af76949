//! Go Pitaya's metric names (`metrics/constants.go`) and label values (spec §11.1, §11.2).
//!
//! Reporters take these short names; the Prometheus reporter adds `pitaya_<subsystem>_`, the
//! statsd reporter adds its prefix (`pitaya.`).

/// `response_time_ns`: summary of handler and RPC response times in nanoseconds.
/// Labels `route`, `status`, `type`, `code`.
pub const RESPONSE_TIME: &str = "response_time_ns";
/// `handler_delay_ns`: summary of the delay before a message is processed, in nanoseconds.
/// Labels `route`, `type`.
pub const PROCESS_DELAY: &str = "handler_delay_ns";
/// `connected_clients`: gauge of clients connected to a frontend.
pub const CONNECTED_CLIENTS: &str = "connected_clients";
/// `count_servers`: gauge of discovered servers, label `type` (server type).
pub const COUNT_SERVERS: &str = "count_servers";
/// `channel_capacity`: gauge of free slots of an internal channel, label `channel`.
pub const CHANNEL_CAPACITY: &str = "channel_capacity";
/// `dropped_messages`: gauge of messages the RPC server dropped.
pub const DROPPED_MESSAGES: &str = "dropped_messages";
/// `busy_workers`: gauge of busy workers of a pool, label `pool`.
pub const WORKER_POOL_BUSY_WORKERS: &str = "busy_workers";
/// `total_workers`: gauge of all workers of a pool, label `pool`.
pub const WORKER_POOL_TOTAL_WORKERS: &str = "total_workers";
/// `goroutines`: gauge; here the number of live tokio tasks.
pub const GOROUTINES: &str = "goroutines";
/// `heapsize`: gauge; here the resident memory of the process in bytes.
pub const HEAP_SIZE: &str = "heapsize";
/// `heapobjects`: gauge; registered for Go's dashboards, not published by this port.
pub const HEAP_OBJECTS: &str = "heapobjects";
/// `worker_jobs_retry_total`: gauge of retried worker jobs.
pub const WORKER_JOBS_RETRY: &str = "worker_jobs_retry_total";
/// `worker_queue_size`: gauge of a worker queue's length, label `queue`.
pub const WORKER_QUEUE_SIZE: &str = "worker_queue_size";
/// `worker_jobs_total`: gauge of executed worker jobs, label `status` (`ok`/`failed`).
pub const WORKER_JOBS_TOTAL: &str = "worker_jobs_total";
/// `exceeded_rate_limiting`: counter of requests blocked by the acceptor's rate limiter.
pub const EXCEEDED_RATE_LIMITING: &str = "exceeded_rate_limiting";
/// `push_no_binding`: counter of pushes by uid that the gRPC RPC client did not send
/// because the uid has no binding (usually an offline user), label `route`. Not in Go,
/// which only logs them; subsystem `rpc_client`, like `rpc_server`'s `dropped_messages`.
pub const PUSH_NO_BINDING: &str = "push_no_binding";

/// Label names used by the built-in metrics.
pub mod label {
    /// `route`
    pub const ROUTE: &str = "route";
    /// `status`: [`super::status::OK`] or [`super::status::FAILED`].
    pub const STATUS: &str = "status";
    /// `type`: see [`super::response_type`], [`super::delay_type`], or a server type.
    pub const TYPE: &str = "type";
    /// `code`: `""` on success, otherwise the `PIT-…` code.
    pub const CODE: &str = "code";
    /// `channel`: see [`super::channel`].
    pub const CHANNEL: &str = "channel";
    /// `pool`: see [`super::pool`].
    pub const POOL: &str = "pool";
    /// `queue`
    pub const QUEUE: &str = "queue";
    /// `game`: const label from `pitaya.metrics.game`.
    pub const GAME: &str = "game";
    /// `serverType`: const label, the server's type.
    pub const SERVER_TYPE: &str = "serverType";
}

/// Values of the `status` label.
pub mod status {
    /// The handler, RPC or job succeeded.
    pub const OK: &str = "ok";
    /// The handler, RPC or job failed.
    pub const FAILED: &str = "failed";
}

/// Values of `type` for [`crate::names::RESPONSE_TIME`].
pub mod response_type {
    /// The frontend wrote the client's response.
    pub const HANDLER: &str = "handler";
    /// An RPC client round trip.
    pub const RPC: &str = "rpc";
}

/// Values of `type` for [`crate::names::PROCESS_DELAY`].
pub mod delay_type {
    /// Processed by this server.
    pub const LOCAL: &str = "local";
    /// Forwarded to another server.
    pub const REMOTE: &str = "remote";
}

/// Values of `pool`.
pub mod pool {
    /// The handler dispatch pool.
    pub const HANDLER_DISPATCH: &str = "handler_dispatch";
    /// The RPC server's remote pool.
    pub const RPC_SERVER_REMOTE: &str = "rpc_server_remote";
}

/// Values of `channel`.
pub mod channel {
    /// The agent's send channel.
    pub const AGENT_CHSEND: &str = "agent_chsend";
    /// The handler's local-process channel.
    pub const HANDLER_CHLOCALPROCESS: &str = "handler_chlocalprocess";
    /// The handler's remote-process channel.
    pub const HANDLER_CHREMOTEPROCESS: &str = "handler_chremoteprocess";
    /// The RPC server's subscription channel.
    pub const RPC_SERVER_SUBCHAN: &str = "rpc_server_subchan";
    /// The RPC server's bindings channel.
    pub const RPC_SERVER_BINDINGSCHAN: &str = "rpc_server_bindingschan";
    /// The RPC server's user-push channel.
    pub const RPC_SERVER_USERPUSHCHAN: &str = "rpc_server_userpushchan";
    /// The RPC server's user-kick channel.
    pub const RPC_SERVER_USERKICKCHAN: &str = "rpc_server_userkickchan";
}
