//! One NATS connection with the options of spec §6.1, and what its events mean for the
//! application: a connection that is lost for good raises the [`DieSignal`], a clean close
//! is only logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{ClientError, ConnectOptions, Event, ServerAddr};
use bytes::Bytes;
use pitaya_cluster::DieSignal;
use pitaya_config::model::{NatsClientConfig, NatsServerConfig};
use pitaya_core::Error;
use tokio::sync::watch;

/// How long a closing connection waits for its buffered messages to reach the socket and
/// for the NATS client to report the close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`Connection::sync`] waits for the NATS server.
const SYNC_TIMEOUT: Duration = Duration::from_secs(1);

/// Unanswered pings async-nats 0.46 allows: it drops the connection when the third ping
/// is due. Not configurable there; [`ping_interval`] scales the interval around it.
const ASYNC_NATS_MAX_PINGS_OUT: u32 = 2;

/// Longest ping interval handed to async-nats: its ticker adds the interval to the
/// current instant, which must not overflow. Also what "no pings" (zero) becomes.
const MAX_PING_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Shortest ping interval handed to async-nats, whose ticker panics on zero.
const MIN_PING_INTERVAL: Duration = Duration::from_millis(1);

/// The connection options shared by the client and server blocks of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct ConnSettings {
    /// The configuration block these come from, for error messages.
    pub(crate) config_prefix: &'static str,
    pub(crate) url: String,
    pub(crate) connection_timeout: Duration,
    pub(crate) max_reconnects: i32,
    pub(crate) reconnect_wait: Duration,
    pub(crate) reconnect_jitter: Duration,
    pub(crate) reconnect_jitter_tls: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) max_pings_outstanding: u32,
    /// Capacity of each subscription's channel inside async-nats.
    pub(crate) subscription_capacity: usize,
}

impl From<&NatsClientConfig> for ConnSettings {
    fn from(c: &NatsClientConfig) -> Self {
        Self {
            config_prefix: "pitaya.cluster.rpc.client.nats",
            url: c.connect.clone(),
            connection_timeout: c.connection_timeout,
            max_reconnects: c.max_reconnection_retries,
            reconnect_wait: c.reconnect_wait,
            reconnect_jitter: c.reconnect_jitter,
            reconnect_jitter_tls: c.reconnect_jitter_tls,
            ping_interval: c.ping_interval,
            max_pings_outstanding: c.max_pings_outstanding,
            // The client connection holds no subscription of its own: replies come through
            // the request multiplexer.
            subscription_capacity: 64,
        }
    }
}

impl From<&NatsServerConfig> for ConnSettings {
    fn from(c: &NatsServerConfig) -> Self {
        Self {
            config_prefix: "pitaya.cluster.rpc.server.nats",
            url: c.connect.clone(),
            connection_timeout: c.connection_timeout,
            max_reconnects: c.max_reconnection_retries,
            reconnect_wait: c.reconnect_wait,
            reconnect_jitter: c.reconnect_jitter,
            reconnect_jitter_tls: c.reconnect_jitter_tls,
            ping_interval: c.ping_interval,
            max_pings_outstanding: c.max_pings_outstanding,
            subscription_capacity: crate::server::INTAKE_CAPACITY,
        }
    }
}

/// Where the connection stands, as its events tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connecting for the first time.
    Pending,
    Up,
    /// Lost; reconnecting.
    Down,
    /// Reconnection attempts exhausted: the connection is gone for good.
    Failed,
    /// Closed on purpose.
    Closed,
}

/// A NATS connection and the state its event callback keeps.
pub(crate) struct Connection {
    pub(crate) client: async_nats::Client,
    events: Arc<Events>,
}

struct Events {
    role: &'static str,
    die: DieSignal,
    /// Set before a deliberate close, so that what follows is not taken as fatal.
    closing: AtomicBool,
    /// Set once connected, so that a first connection that never succeeds is reported by
    /// `connect` rather than through the die signal.
    established: AtomicBool,
    phase: watch::Sender<Phase>,
    /// Where messages that async-nats dropped at intake are counted, if anywhere.
    slow_consumer: Option<Arc<AtomicU64>>,
}

impl Connection {
    /// Connects with `settings` and waits for the first connection, retrying as the
    /// settings allow (nats.go's `RetryOnFailedConnect`).
    ///
    /// # Errors
    /// `PIT-000` with the NATS error text when the URL is invalid or no server could be
    /// reached within the allowed attempts. A `ws://` or `wss://` URL is refused before
    /// any attempt, with a message naming the `connect` key (see [`parse_urls`]).
    pub(crate) async fn open(
        settings: &ConnSettings,
        role: &'static str,
        die: DieSignal,
        slow_consumer: Option<Arc<AtomicU64>>,
    ) -> Result<Self, Error> {
        let urls = parse_urls(&settings.url, settings.config_prefix)?;
        let jitter = if urls.iter().any(ServerAddr::tls_required) {
            settings.reconnect_jitter_tls
        } else {
            settings.reconnect_jitter
        };
        let pings = ping_interval(settings.ping_interval, settings.max_pings_outstanding);
        tracing::debug!(
            role,
            pinginterval = ?settings.ping_interval,
            maxpingsoutstanding = settings.max_pings_outstanding,
            used = ?pings,
            "nats: ping interval scaled to async-nats' two outstanding pings"
        );
        let events = Arc::new(Events {
            role,
            die,
            closing: AtomicBool::new(false),
            established: AtomicBool::new(false),
            phase: watch::channel(Phase::Pending).0,
            slow_consumer,
        });
        let on_event = events.clone();
        let wait = settings.reconnect_wait;
        let mut options = ConnectOptions::new()
            .connection_timeout(settings.connection_timeout)
            .ping_interval(pings)
            .subscription_capacity(settings.subscription_capacity.max(1))
            // Every request carries its own timeout.
            .request_timeout(None)
            // async-nats counts attempts from 1 after each successful connection: the first
            // attempt after a loss goes at once, later ones wait like nats.go.
            .reconnect_delay_callback(move |attempt| {
                if attempt <= 1 { Duration::ZERO } else { wait + random_below(jitter) }
            })
            .event_callback(move |event| {
                let events = on_event.clone();
                async move { events.on_event(event) }
            });
        // nats.go: a negative maximum retries forever.
        options = options.max_reconnects(usize::try_from(settings.max_reconnects).ok());
        if settings.max_reconnects != 0 {
            // With zero allowed reconnects async-nats would refuse even the first attempt.
            options = options.retry_on_initial_connect();
        }
        let client = options.connect(urls).await.map_err(Error::from)?;
        let mut phase = events.phase.subscribe();
        let reached = phase.wait_for(|p| *p != Phase::Pending).await.map(|p| *p);
        match reached {
            Ok(Phase::Failed) | Err(_) => Err(Error::unknown(format!(
                "nats: could not connect to {}: max reconnects reached",
                settings.url
            ))),
            Ok(_) => Ok(Self { client, events }),
        }
    }

    /// Whether the connection is up right now.
    pub(crate) fn is_up(&self) -> bool {
        *self.events.phase.borrow() == Phase::Up
    }

    /// Waits until the NATS server has processed everything this connection sent so far,
    /// so that the subscriptions made before are in place when this returns.
    ///
    /// async-nats' flush only empties the socket buffer. A request to a fresh inbox that
    /// nobody serves comes back ("no responders") only after the server has read all that
    /// came before it on this connection. Skipped while disconnected; bounded by
    /// [`SYNC_TIMEOUT`].
    pub(crate) async fn sync(&self) {
        if !self.is_up() {
            return;
        }
        let probe = self.client.request(self.client.new_inbox(), Bytes::new());
        if tokio::time::timeout(SYNC_TIMEOUT, probe).await.is_err() {
            tracing::debug!(role = self.events.role, "nats: no answer to the sync probe");
        }
    }

    /// Writes out what is buffered, unsubscribes everything and closes, bounded by
    /// [`CLOSE_TIMEOUT`]. A reconnection failure after this is not fatal. Idempotent.
    pub(crate) async fn close(&self) {
        if self.events.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        let role = self.events.role;
        if !self.is_up() {
            // Nothing can be written while the connection is down; the NATS client closes
            // once it reconnects or gives up.
            tracing::warn!(role, "nats: closing while disconnected; unsent messages are lost");
        }
        let drained = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if let Err(e) = self.client.flush().await {
                tracing::warn!(role, error = %e, "nats: flush before close failed");
            }
            if let Err(e) = self.client.drain().await {
                tracing::debug!(role, error = %e, "nats: drain failed");
            }
            let mut phase = self.events.phase.subscribe();
            let _closed = phase.wait_for(|p| matches!(p, Phase::Closed | Phase::Failed)).await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(role, "nats: connection did not close in time");
        }
    }
}

impl Events {
    fn on_event(&self, event: Event) {
        let role = self.role;
        match event {
            Event::Connected => {
                self.established.store(true, Ordering::SeqCst);
                self.phase.send_replace(Phase::Up);
                tracing::info!(role, "nats: connected");
            }
            Event::Disconnected => {
                self.phase.send_replace(Phase::Down);
                tracing::warn!(role, "nats: disconnected; reconnecting");
            }
            Event::Closed => {
                self.phase.send_replace(Phase::Closed);
                tracing::info!(role, "nats: connection closed with no error");
            }
            Event::ClientError(ClientError::MaxReconnects) => {
                self.phase.send_replace(Phase::Failed);
                let fatal =
                    self.established.load(Ordering::SeqCst) && !self.closing.load(Ordering::SeqCst);
                if fatal {
                    // Go's ClosedHandler with a LastError: the app shuts down.
                    self.die.die(format!("nats {role} connection closed: max reconnects reached"));
                } else {
                    tracing::warn!(role, "nats: gave up connecting");
                }
            }
            Event::ClientError(ClientError::Other(e)) => {
                tracing::warn!(role, error = %e, "nats: client error");
            }
            Event::ServerError(e) => tracing::warn!(role, error = %e, "nats: server error"),
            Event::SlowConsumer(sid) => {
                if let Some(counter) = &self.slow_consumer {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(role, sid, "nats: slow consumer, message dropped");
            }
            Event::LameDuckMode => {
                // The server closes the connection soon; the reconnection that follows moves
                // the connection and re-creates every subscription, per-user ones included.
                tracing::warn!(role, "nats: server entered lame duck mode");
            }
            Event::Draining => tracing::debug!(role, "nats: draining"),
        }
    }
}

/// `connect` as nats.go reads it: one URL or a comma-separated list.
///
/// NATS over WebSocket (`ws://`, `wss://`), which nats.go supports, is refused: the
/// async-nats client only has it behind its `websockets` feature, which brings a second
/// WebSocket stack with its own fixed root certificates (under a license our `deny.toml`
/// does not allow) and no permessage-deflate, so `websocketcompression` could not be
/// honoured. Without the feature async-nats would speak plain NATS to the WebSocket port
/// and never connect; a clear error at start is better.
fn parse_urls(url: &str, config_prefix: &str) -> Result<Vec<ServerAddr>, Error> {
    let urls: Vec<ServerAddr> = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| u.parse::<ServerAddr>())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::unknown(format!("nats: invalid url {url:?}: {e}")))?;
    if urls.is_empty() {
        return Err(Error::unknown("nats: no servers available for connection"));
    }
    if let Some(ws) = urls.iter().find(|u| u.is_websocket()) {
        return Err(Error::unknown(format!(
            "nats: {config_prefix}.connect: {}:// urls (nats over websocket) are not supported, \
             use nats:// or tls://",
            ws.scheme()
        )));
    }
    Ok(urls)
}

/// The ping interval handed to async-nats, so that a silent server is noticed after the
/// same longest time as in nats.go.
///
/// nats.go pings every `configured` interval and drops the connection when a ping is due
/// while `max_pings_outstanding` are unanswered: at most `(max + 1) * configured` after
/// the last answer. async-nats drops it when a ping is due with
/// [`ASYNC_NATS_MAX_PINGS_OUT`] unanswered, at most `3 * interval` after the last
/// traffic. Scaling the interval by `(max + 1) / 3` makes the two bounds equal. Zero
/// means "no pings" in nats.go; async-nats cannot turn them off, so it gets a day.
fn ping_interval(configured: Duration, max_pings_outstanding: u32) -> Duration {
    if configured.is_zero() {
        return MAX_PING_INTERVAL;
    }
    let go_bound = configured.saturating_mul(max_pings_outstanding.saturating_add(1));
    (go_bound / (ASYNC_NATS_MAX_PINGS_OUT + 1)).clamp(MIN_PING_INTERVAL, MAX_PING_INTERVAL)
}

/// A random duration in `[0, max)`.
fn random_below(max: Duration) -> Duration {
    let max_nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if max_nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(pitaya_core::context::random_u64() % max_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "pitaya.cluster.rpc.client.nats";

    #[test]
    fn urls_like_nats_go() {
        assert_eq!(parse_urls("nats://localhost:4222", KEY).unwrap().len(), 1);
        assert_eq!(parse_urls("nats://a:4222, nats://b:4223", KEY).unwrap().len(), 2);
        assert!(parse_urls("tls://a:4222", KEY).unwrap()[0].tls_required());
        assert!(parse_urls("", KEY).is_err());
        assert!(parse_urls("nats://a:notaport", KEY).is_err());
    }

    #[test]
    fn websocket_urls_are_refused_naming_the_key() {
        for url in ["ws://a:8080", "nats://a:4222,wss://b:443"] {
            let err = parse_urls(url, KEY).unwrap_err();
            assert_eq!(err.code(), "PIT-000");
            let msg = err.to_string();
            assert!(msg.contains("pitaya.cluster.rpc.client.nats.connect"), "{msg}");
            assert!(msg.contains("not supported"), "{msg}");
        }
    }

    #[test]
    fn ping_interval_matches_the_longest_detection_time_of_nats_go() {
        let two_minutes = Duration::from_secs(120);
        // Pitaya's defaults: nats.go notices a silent server within 4 x 2m = 8m; async-nats
        // within 3 x the interval.
        assert_eq!(ping_interval(two_minutes, 3), Duration::from_secs(160));
        for max in [0, 1, 2, 3, 7, 12, 100] {
            let ours = ping_interval(two_minutes, max) * (ASYNC_NATS_MAX_PINGS_OUT + 1);
            assert_eq!(ours, two_minutes * (max + 1), "maxpingsoutstanding {max}");
        }
        assert_eq!(ping_interval(two_minutes, 2), two_minutes);
    }

    #[test]
    fn ping_interval_stays_in_what_async_nats_accepts() {
        assert_eq!(ping_interval(Duration::ZERO, 3), MAX_PING_INTERVAL);
        assert_eq!(ping_interval(Duration::from_nanos(1), 0), MIN_PING_INTERVAL);
        assert_eq!(ping_interval(Duration::MAX, u32::MAX), MAX_PING_INTERVAL);
        assert_eq!(ping_interval(Duration::from_secs(3600), u32::MAX), MAX_PING_INTERVAL);
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        assert_eq!(random_below(Duration::ZERO), Duration::ZERO);
        let max = Duration::from_millis(100);
        assert!((0..1000).map(|_| random_below(max)).all(|d| d < max));
    }
}
