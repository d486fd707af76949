//! The lease that keeps this server's key alive (spec §5.3): registration, keep-alive,
//! recovery and revocation.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, LeaseKeepAliveStream, LeaseKeeper, PutOptions};
use futures_util::future::join_all;

use crate::error::{SdError, bounded};
use crate::shared::Shared;

/// A live lease with our key on it.
pub(crate) struct Registration {
    lease: i64,
    keeper: LeaseKeeper,
    responses: LeaseKeepAliveStream,
}

/// Spec §5.3: the lease TTL is `heartbeat.ttl` in whole seconds (Go truncates). etcd
/// raises a TTL below its minimum itself; we only keep it from reaching 0.
pub(crate) fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1)
}

/// Renew at about TTL/3, as Go's etcd client does.
fn renew_period(ttl: Duration) -> Duration {
    Duration::from_secs(ttl_secs(ttl).unsigned_abs()) / 3
}

/// Grants a lease, starts keeping it alive and puts our record on it.
pub(crate) async fn register(
    shared: &Shared,
    client: &mut Client,
) -> Result<Registration, SdError> {
    let dial = shared.dial_timeout();
    let ttl = ttl_secs(shared.config.heartbeat.ttl);
    let lease = bounded("grant lease", dial, client.lease_grant(ttl, None)).await?.id();
    // Tracked before anything else can fail, so that stop() revokes it in any case.
    shared.track_lease(lease);
    tracing::debug!(lease = format_args!("{lease:x}"), ttl, "sd: got etcd lease");
    attach(shared, client, lease).await
}

/// Keeps `lease` alive and puts our record on it.
async fn attach(shared: &Shared, client: &mut Client, lease: i64) -> Result<Registration, SdError> {
    let dial = shared.dial_timeout();
    // The client sends the first keep-alive and fails with "lease not found" when etcd no
    // longer has the lease.
    let (keeper, responses) =
        bounded("keep lease alive", dial, client.lease_keep_alive(lease)).await?;
    put_own(shared, client, lease).await?;
    Ok(Registration { lease, keeper, responses })
}

async fn put_own(shared: &Shared, client: &mut Client, lease: i64) -> Result<(), SdError> {
    let put = client.put(
        shared.own_key.as_str(),
        shared.me.to_json(),
        Some(PutOptions::new().with_lease(lease)),
    );
    bounded("put", shared.dial_timeout(), put).await.map(drop)
}

/// Renews the lease once. `Err` means it must be re-established.
async fn renew(shared: &Shared, reg: &mut Registration) -> Result<(), SdError> {
    reg.keeper
        .keep_alive()
        .await
        .map_err(|source| SdError::Etcd { op: "keep lease alive", source })?;
    let resp = bounded("keep lease alive", shared.dial_timeout(), reg.responses.message()).await?;
    match resp {
        Some(r) if r.ttl() > 0 => {
            if shared.config.heartbeat.log {
                tracing::debug!(lease = format_args!("{:x}", reg.lease), "sd: etcd lease renewed");
            }
            Ok(())
        }
        Some(_) => Err(SdError::Protocol {
            op: "keep lease alive",
            reason: "lease expired or revoked".into(),
        }),
        None => Err(SdError::Protocol { op: "keep lease alive", reason: "stream closed".into() }),
    }
}

/// The lease task: renews until cancelled, and re-registers when the lease is lost.
///
/// Raises the die signal and returns when re-registering fails for good (spec §5.3).
pub(crate) async fn keep_registered(
    shared: Arc<Shared>,
    mut client: Client,
    mut reg: Registration,
) {
    let period = renew_period(shared.config.heartbeat.ttl);
    loop {
        let outcome = tokio::select! {
            () = tokio::time::sleep(period) => renew(&shared, &mut reg).await,
            () = shared.check_registration.notified() => {
                // Our key vanished while the lease may be fine (deleted by hand, or a
                // stale event): renew to learn which, then put the key back.
                match renew(&shared, &mut reg).await {
                    Ok(()) => put_own(&shared, &mut client, reg.lease).await,
                    Err(e) => Err(e),
                }
            }
        };
        let Err(error) = outcome else { continue };
        tracing::warn!(%error, "sd: error renewing etcd lease, registering again");
        match recover(&shared, &mut client, reg.lease).await {
            Some(new) => {
                reg = new;
                tracing::info!(
                    lease = format_args!("{:x}", reg.lease),
                    "sd: registered in etcd again"
                );
                shared.resync.notify_one();
            }
            None => return,
        }
    }
}

/// Spec §5.3: re-register every `grantlease.retryinterval`, at most `grantlease.maxretries`
/// times; an attempt longer than `grantlease.timeout` is fatal. `None` once the die
/// signal is raised.
async fn recover(shared: &Shared, client: &mut Client, lost: i64) -> Option<Registration> {
    let cfg = &shared.config.grant_lease;
    let attempts = cfg.max_retries.max(1);
    let mut lease = lost;
    for attempt in 1..=attempts {
        match tokio::time::timeout(cfg.timeout, reregister(shared, client, &mut lease)).await {
            Ok(Ok(reg)) => return Some(reg),
            Ok(Err(error)) => tracing::warn!(
                %error, attempt, attempts, retry_in = ?cfg.retry_interval,
                "sd: error registering in etcd"
            ),
            Err(_) => {
                shared.die.die(format!(
                    "etcd sd: timed out registering in etcd (grantlease.timeout {:?})",
                    cfg.timeout
                ));
                return None;
            }
        }
        if attempt < attempts {
            tokio::time::sleep(cfg.retry_interval).await;
        }
    }
    shared.die.die(format!("etcd sd: could not register in etcd after {attempts} attempts"));
    None
}

/// One recovery attempt. Reuses `lease` while etcd still has it (an etcd restart keeps
/// leases), which spares peers a lease change; otherwise grants a new one and makes it
/// the one later attempts try first.
async fn reregister(
    shared: &Shared,
    client: &mut Client,
    lease: &mut i64,
) -> Result<Registration, SdError> {
    let reg = match attach(shared, client, *lease).await {
        Ok(reg) => reg,
        Err(error) => {
            tracing::debug!(%error, "sd: previous etcd lease unusable, granting a new one");
            let dial = shared.dial_timeout();
            let ttl = ttl_secs(shared.config.heartbeat.ttl);
            *lease = bounded("grant lease", dial, client.lease_grant(ttl, None)).await?.id();
            shared.track_lease(*lease);
            attach(shared, client, *lease).await?
        }
    };
    // Our key is on `reg.lease` now; older leases hold nothing of ours.
    revoke(shared, client, shared.take_leases_except(Some(reg.lease))).await;
    Ok(reg)
}

/// Revokes every tracked lease, deleting our key at once (spec §5.3, shutdown).
pub(crate) async fn revoke_all(shared: &Shared, client: &Client) {
    revoke(shared, client, shared.take_leases_except(None)).await;
}

/// Revokes `leases`, each bounded by `revoke.timeout`. Failures are logged: a lease
/// left behind expires by itself within its TTL.
async fn revoke(shared: &Shared, client: &Client, leases: Vec<i64>) {
    let timeout = shared.config.revoke.timeout;
    join_all(leases.into_iter().map(|lease| {
        let mut client = client.clone();
        async move {
            match bounded("revoke lease", timeout, client.lease_revoke(lease)).await {
                Ok(_) => {
                    tracing::debug!(lease = format_args!("{lease:x}"), "sd: etcd lease revoked")
                }
                // Already expired or revoked (the usual case for a lease we recovered from).
                Err(error) if error.to_string().contains("lease not found") => {}
                Err(error) => tracing::warn!(
                    %error, lease = format_args!("{lease:x}"), "sd: could not revoke etcd lease"
                ),
            }
        }
    }))
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_whole_seconds_and_renewal_a_third() {
        assert_eq!(ttl_secs(Duration::from_secs(60)), 60);
        assert_eq!(ttl_secs(Duration::from_millis(30_900)), 30);
        assert_eq!(ttl_secs(Duration::from_millis(200)), 1);
        assert_eq!(renew_period(Duration::from_secs(60)), Duration::from_secs(20));
        assert_eq!(renew_period(Duration::from_secs(3)), Duration::from_secs(1));
    }
}
