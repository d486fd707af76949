//! The watch task (spec §5.4): applies etcd's events to the view, runs the periodic
//! sync, and re-creates the watch when it breaks.
//!
//! Sync and watch are made consistent by revision, which is stricter than Go (Go only
//! holds events back while a sync runs, so an event older than the listing can still
//! undo it): each sync lists at a revision R, a new watch starts at R + 1, and events
//! at or below the last sync's revision are skipped because the listing already
//! reflects them. Both run in this one task, so events also wait while a sync runs.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions, WatchResponse, WatchStream};
use tokio::time::{Instant, MissedTickBehavior};

use crate::backoff::Backoff;
use crate::error::{SdError, bounded};
use crate::shared::Shared;
use crate::sync::{key_of, parse, sync};

/// Delays between attempts to re-create a broken watch: quick after a blip, at most a
/// couple of seconds while etcd is down, never a busy loop.
const REWATCH_MIN: Duration = Duration::from_millis(200);
const REWATCH_MAX: Duration = Duration::from_secs(2);
/// A watch that lasted this long is healthy: its failure restarts the backoff.
const WATCH_HEALTHY: Duration = Duration::from_secs(10);

/// Watches `<prefix>servers/` from `from`, and waits until etcd confirms the watch.
pub(crate) async fn open_watch(
    shared: &Shared,
    client: &mut Client,
    from: i64,
) -> Result<WatchStream, SdError> {
    let dial = shared.dial_timeout();
    let options = WatchOptions::new().with_prefix().with_start_revision(from);
    let mut stream =
        bounded("watch", dial, client.watch(shared.servers_prefix.as_str(), Some(options))).await?;
    match bounded("watch", dial, stream.message()).await? {
        Some(resp) if resp.created() && !resp.canceled() => Ok(stream),
        Some(resp) => Err(SdError::Protocol {
            op: "watch",
            reason: format!("watch not created: {:?}", resp.cancel_reason()),
        }),
        None => Err(SdError::Protocol { op: "watch", reason: "stream closed".into() }),
    }
}

/// The watch task. `watch` was opened right after the sync at `revision`.
pub(crate) async fn watch_servers(
    shared: Arc<Shared>,
    mut client: Client,
    watch: WatchStream,
    mut revision: i64,
) {
    let interval = shared.config.sync_servers.interval.max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut backoff = Backoff::new(REWATCH_MIN, REWATCH_MAX);
    let mut watch = Some(watch);
    let mut watching_since = Instant::now();
    loop {
        let Some(stream) = watch.as_mut() else {
            tokio::time::sleep(backoff.next_delay()).await;
            match resync_and_watch(&shared, &mut client).await {
                Ok((stream, rev)) => {
                    tracing::info!(revision = rev, "sd: etcd watch re-created");
                    watch = Some(stream);
                    revision = rev;
                    watching_since = Instant::now();
                }
                Err(error) => tracing::warn!(%error, "sd: could not re-create the etcd watch"),
            }
            continue;
        };
        let broken = tokio::select! {
            _ = ticker.tick() => {
                periodic_sync(&shared, &mut client, &mut revision).await;
                false
            }
            () = shared.resync.notified() => {
                periodic_sync(&shared, &mut client, &mut revision).await;
                false
            }
            msg = stream.message() => match msg {
                Ok(Some(resp)) if resp.canceled() => {
                    // E.g. the start revision was compacted: list again, watch again.
                    tracing::warn!(
                        reason = resp.cancel_reason(),
                        compact_revision = resp.compact_revision(),
                        "sd: etcd cancelled the watch"
                    );
                    true
                }
                Ok(Some(resp)) => {
                    apply(&shared, &resp, revision);
                    false
                }
                Ok(None) => {
                    tracing::warn!("sd: etcd watch closed, re-creating it");
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, "sd: etcd watch failed, re-creating it");
                    true
                }
            },
        };
        if broken {
            watch = None;
            // Only a watch that held for a while earns a quick retry: one that etcd
            // keeps breaking at once is retried ever more slowly.
            if watching_since.elapsed() >= WATCH_HEALTHY {
                backoff.reset();
            }
        }
    }
}

/// After a broken watch: events may have been missed, so list again (removing ghosts)
/// and watch from just after that listing.
async fn resync_and_watch(
    shared: &Shared,
    client: &mut Client,
) -> Result<(WatchStream, i64), SdError> {
    let revision = sync(shared, client, false).await?;
    let stream = open_watch(shared, client, revision + 1).await?;
    Ok((stream, revision))
}

async fn periodic_sync(shared: &Shared, client: &mut Client, revision: &mut i64) {
    match sync(shared, client, false).await {
        // max: after an etcd that lost its data, revisions restart low; the watch then
        // breaks too and its re-creation resets `revision` from a fresh listing.
        Ok(rev) => *revision = (*revision).max(rev),
        Err(error) => tracing::warn!(%error, "sd: error syncing servers"),
    }
}

/// Applies one watch response's events newer than `synced` (the last listing).
fn apply(shared: &Shared, resp: &WatchResponse, synced: i64) {
    for event in resp.events() {
        let Some(kv) = event.kv() else { continue };
        if kv.mod_revision() <= synced {
            continue;
        }
        let Some((server_type, id)) = key_of(shared, kv.key()) else { continue };
        if shared.ignored(server_type, id) {
            continue;
        }
        match event.event_type() {
            EventType::Put => {
                if let Some(server) = parse(kv.key(), kv.value()) {
                    // Spec §5.4: a PUT for a known id is ignored (View::add).
                    shared.view.add(Arc::new(server));
                }
            }
            EventType::Delete if id == shared.me.id => {
                // We stay in our own view while we run; put the key back instead.
                tracing::warn!(key = %shared.own_key, "sd: our own key was deleted from etcd");
                shared.check_registration.notify_one();
            }
            EventType::Delete => {
                shared.view.remove(id);
            }
        }
    }
}
