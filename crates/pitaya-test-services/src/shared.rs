//! One instance of each service per test process, or the ones `cargo xtask test` started.

use std::sync::OnceLock;

use crate::{Etcd, Nats, Redis};

/// Environment variable holding the shared NATS URL (`nats://127.0.0.1:PORT`), set by
/// `cargo xtask test` for `cargo test`.
pub const NATS_URL_ENV: &str = "PITAYA_TEST_NATS_URL";

/// Environment variable holding the shared etcd endpoint (`127.0.0.1:PORT`), set by
/// `cargo xtask test` for `cargo test`.
pub const ETCD_ENDPOINTS_ENV: &str = "PITAYA_TEST_ETCD_ENDPOINTS";

/// Environment variable holding the shared Redis URL (`redis://127.0.0.1:PORT`), set by
/// `cargo xtask test` for `cargo test`.
pub const REDIS_URL_ENV: &str = "PITAYA_TEST_REDIS_URL";

/// A NATS URL for tests that need a server but never stop it: [`NATS_URL_ENV`] when set
/// and not blank; otherwise one private [`Nats`] started on first use and shared by the
/// whole test process. Tests share it, so they must use subjects of their own.
///
/// The fallback instance is never dropped (the test harness exits without running static
/// destructors): its watchdog kills it and removes its temp dir once the process is gone.
///
/// # Panics
///
/// As [`Nats::start`], when the variable is unset and the server cannot be started.
pub fn shared_nats_url() -> String {
    static NATS: OnceLock<Nats> = OnceLock::new();
    env_or(NATS_URL_ENV, || NATS.get_or_init(Nats::start).url())
}

/// An etcd endpoint (`127.0.0.1:PORT`, no scheme) for tests that need etcd but never stop
/// it: [`ETCD_ENDPOINTS_ENV`] when set and not blank (taken as is, so it may list several
/// endpoints separated by commas); otherwise one private [`Etcd`] started on first use and
/// shared by the whole test process. Tests share it, so they must use key prefixes of
/// their own.
///
/// The fallback instance is never dropped: its watchdog kills it and removes its data once
/// the process is gone.
///
/// # Panics
///
/// As [`Etcd::start`], when the variable is unset and etcd cannot be started.
pub fn shared_etcd_endpoint() -> String {
    static ETCD: OnceLock<Etcd> = OnceLock::new();
    env_or(ETCD_ENDPOINTS_ENV, || ETCD.get_or_init(Etcd::start).endpoint())
}

/// A Redis URL for tests that need Redis but never stop it: [`REDIS_URL_ENV`] when set and
/// not blank; otherwise one private [`Redis`] started on first use and shared by the whole
/// test process. Tests share it, so they must use keys of their own.
///
/// The fallback instance is never dropped: its watchdog kills it once the process is gone.
///
/// # Panics
///
/// As [`Redis::start`], when the variable is unset and the server cannot be started.
pub fn shared_redis_url() -> String {
    static REDIS: OnceLock<Redis> = OnceLock::new();
    env_or(REDIS_URL_ENV, || REDIS.get_or_init(Redis::start).url())
}

fn env_or(var: &str, fallback: impl FnOnce() -> String) -> String {
    given_or(std::env::var(var).ok(), fallback)
}

/// `given` unless it is missing or blank, else what `fallback` returns.
fn given_or(given: Option<String>, fallback: impl FnOnce() -> String) -> String {
    match given {
        Some(value) if !value.trim().is_empty() => value,
        _ => fallback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_address_wins_without_starting_anything() {
        let url = given_or(Some("nats://10.0.0.1:4222".into()), || unreachable!("not started"));
        assert_eq!(url, "nats://10.0.0.1:4222");
    }

    #[test]
    fn a_missing_or_blank_address_starts_the_fallback() {
        assert_eq!(given_or(None, || "started".into()), "started");
        assert_eq!(given_or(Some(" ".into()), || "started".into()), "started");
    }
}
