//! Process-wide counts the metrics runtime reads: [`pushes_without_binding`].

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// Pushes by uid that found no binding, per push route, since the process started.
static PUSHES_WITHOUT_BINDING: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Pushes by uid ([`RpcClient::send_push`](pitaya_cluster::RpcClient::send_push) without
/// a frontend id) that were not sent because the binding storage has no binding for the
/// uid (spec §8.4, §8.6), per push route: running totals since the process started, in
/// route order, over every [`GrpcRpcClient`](crate::GrpcRpcClient) of the process (as
/// Go's package-level metric reporters).
///
/// Such a uid is still reported as failed to the caller, as Go's `SendPushToUsers`
/// does; this count tells "user offline" apart from real push failures. The metrics
/// runtime reports it as the counter `push_no_binding` with label `route`. Routes are
/// chosen by application code, so the map stays as small as the set of push routes.
pub fn pushes_without_binding() -> Vec<(String, u64)> {
    let counts = PUSHES_WITHOUT_BINDING.lock().unwrap_or_else(PoisonError::into_inner);
    counts.iter().map(|(route, n)| (route.clone(), *n)).collect()
}

/// Counts one push to `route` that found no binding.
pub(crate) fn count_push_without_binding(route: &str) {
    let mut counts = PUSHES_WITHOUT_BINDING.lock().unwrap_or_else(PoisonError::into_inner);
    match counts.get_mut(route) {
        Some(n) => *n += 1,
        None => {
            counts.insert(route.to_owned(), 1);
        }
    }
}
