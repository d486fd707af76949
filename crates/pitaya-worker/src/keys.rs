//! Redis key names (spec §10): every key is prefixed with `<namespace>:`, or with nothing
//! when the namespace is empty (go-workers' `Config.Namespace`).

/// The queue Pitaya's reliable RPCs go to.
pub const RPC_QUEUE: &str = "rpc";

/// The key names of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `namespace` (`""` for none).
    pub fn new(namespace: &str) -> Self {
        let prefix = if namespace.is_empty() { String::new() } else { format!("{namespace}:") };
        Self { prefix }
    }

    /// `<ns>queues`: the set of known queue names.
    pub fn queues(&self) -> String {
        format!("{}queues", self.prefix)
    }

    /// `<ns>queue:<queue>`: the list jobs wait in (LPUSH in, BRPOPLPUSH out).
    pub fn queue(&self, queue: &str) -> String {
        format!("{}queue:{queue}", self.prefix)
    }

    /// `<ns>queue:<queue>:<process>:inprogress`: jobs taken by `process` and not yet
    /// finished.
    pub fn in_progress(&self, queue: &str, process: &str) -> String {
        format!("{}queue:{queue}:{process}:inprogress", self.prefix)
    }

    /// `<ns>goretry`: sorted set of failed jobs, scored by when they run again.
    pub fn retry(&self) -> String {
        format!("{}goretry", self.prefix)
    }

    /// `<ns>schedule`: sorted set of jobs enqueued for later, scored by their `at`.
    pub fn schedule(&self) -> String {
        format!("{}schedule", self.prefix)
    }

    /// `<ns>stat:<metric>` (`processed` or `failed`).
    pub fn stat(&self, metric: &str) -> String {
        format!("{}stat:{metric}", self.prefix)
    }

    /// `<ns>stat:<metric>:YYYY-MM-DD` (UTC day).
    pub fn stat_day(&self, metric: &str, day: &str) -> String {
        format!("{}stat:{metric}:{day}", self.prefix)
    }

    /// The prefix itself (`"<ns>:"` or `""`), which the poller strips from queue names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_namespace() {
        let plain = Keys::new("");
        assert_eq!(plain.queue(RPC_QUEUE), "queue:rpc");
        assert_eq!(plain.in_progress(RPC_QUEUE, "host"), "queue:rpc:host:inprogress");
        assert_eq!(plain.retry(), "goretry");
        let ns = Keys::new("game");
        assert_eq!(ns.queues(), "game:queues");
        assert_eq!(ns.queue(RPC_QUEUE), "game:queue:rpc");
        assert_eq!(ns.stat_day("failed", "2024-06-10"), "game:stat:failed:2024-06-10");
        assert_eq!(ns.schedule(), "game:schedule");
    }
}
