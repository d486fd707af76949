//! Fault tests: backends killed, NATS and etcd restarted.
