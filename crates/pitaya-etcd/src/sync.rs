//! The full sync (spec §5.4): brings the view in line with one listing of etcd.

use std::collections::HashSet;
use std::sync::Arc;

use etcd_client::{Client, GetOptions};
use futures_util::{StreamExt, stream};
use pitaya_cluster::Server;

use crate::error::{SdError, bounded};
use crate::keys::parse_server_key;
use crate::shared::Shared;

/// Lists `<prefix>servers/` at one revision, adds the servers the view lacks, removes
/// the ones etcd lacks, and returns that revision.
///
/// `with_values` lists values too (the first sync, spec §5.4). Otherwise only keys are
/// listed and values are fetched for unknown ids, `syncservers.parallelism` at a time;
/// those reads are at the latest revision, which is safe: a later change to such a key
/// also reaches us as a watch event past the returned revision.
///
/// Our own entry is never removed while we run; if our key is missing the lease task is
/// asked to put it back.
pub(crate) async fn sync(
    shared: &Shared,
    client: &mut Client,
    with_values: bool,
) -> Result<i64, SdError> {
    let started = tokio::time::Instant::now();
    let mut options = GetOptions::new().with_prefix();
    if !with_values {
        options = options.with_keys_only();
    }
    let listing = bounded(
        "sync",
        shared.dial_timeout(),
        client.get(shared.servers_prefix.as_str(), Some(options)),
    )
    .await?;
    let revision = listing.header().map_or(0, |h| h.revision());

    let mut in_etcd = HashSet::new();
    let mut own_key_present = false;
    let mut parsed = Vec::new();
    let mut to_fetch = Vec::new();
    for kv in listing.kvs() {
        let Some((server_type, id)) = key_of(shared, kv.key()) else { continue };
        own_key_present |= id == shared.me.id;
        if shared.ignored(server_type, id) {
            continue;
        }
        in_etcd.insert(id.to_owned());
        if shared.view.contains(id) {
            continue;
        }
        if with_values {
            parsed.extend(parse(kv.key(), kv.value()));
        } else {
            to_fetch.push(kv.key().to_vec());
        }
    }

    let parallelism = shared.config.sync_servers.parallelism.max(1);
    let fetched: Vec<Option<Server>> = stream::iter(to_fetch)
        .map(|key| fetch(shared, client.clone(), key))
        .buffer_unordered(parallelism)
        .collect()
        .await;

    for server in parsed.into_iter().chain(fetched.into_iter().flatten()) {
        shared.view.add(Arc::new(server));
    }
    // Go keys the view by the record's id but compares with the key's last segment here
    // (spec §5.1); doing the same keeps a mismatched record behaving as it does in Go.
    for id in shared.view.ids() {
        if id != shared.me.id && !in_etcd.contains(&id) {
            tracing::warn!(%id, "sd: deleting server missing from etcd");
            shared.view.remove(&id);
        }
    }
    if !own_key_present {
        tracing::warn!(key = %shared.own_key, "sd: our own key is missing from etcd");
        shared.check_registration.notify_one();
    }
    tracing::debug!(revision, elapsed = ?started.elapsed(), servers = shared.view.servers().len(), "sd: servers synced");
    Ok(revision)
}

/// The `(type, id)` of a server key, or `None` (logged) for another key.
pub(crate) fn key_of<'k>(shared: &Shared, key: &'k [u8]) -> Option<(&'k str, &'k str)> {
    let parsed =
        std::str::from_utf8(key).ok().and_then(|k| parse_server_key(&shared.config.prefix, k));
    if parsed.is_none() {
        tracing::warn!(key = %String::from_utf8_lossy(key), "sd: ignoring a key that is not <prefix>servers/<type>/<id>");
    }
    parsed
}

/// Parses a record; an invalid one is logged and ignored, as in Go.
pub(crate) fn parse(key: &[u8], value: &[u8]) -> Option<Server> {
    match Server::from_json(value) {
        Ok(server) => Some(server),
        Err(error) => {
            tracing::warn!(key = %String::from_utf8_lossy(key), %error, "sd: ignoring an invalid server record");
            None
        }
    }
}

/// Reads one record; `None` when it is gone, invalid or unreadable (logged; the next
/// sync tries again).
async fn fetch(shared: &Shared, mut client: Client, key: Vec<u8>) -> Option<Server> {
    match bounded("sync: get", shared.dial_timeout(), client.get(key.clone(), None)).await {
        Ok(resp) => resp.kvs().first().and_then(|kv| parse(kv.key(), kv.value())),
        Err(error) => {
            tracing::warn!(key = %String::from_utf8_lossy(&key), %error, "sd: could not read a server record");
            None
        }
    }
}
