//! [`DieSignal`]: how a layer asks the application to shut down (Go's die channel).

use std::sync::Arc;

use tokio::sync::watch;

/// Raised by a layer that cannot go on (the discovery lost its lease for good, the RPC
/// connection closed with an error). The application watches it and shuts down
/// gracefully. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DieSignal(Arc<watch::Sender<Option<String>>>);

impl Default for DieSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl DieSignal {
    /// A signal not yet raised.
    pub fn new() -> Self {
        Self(Arc::new(watch::channel(None).0))
    }

    /// Raises the signal with `reason`; the first reason wins.
    pub fn die(&self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::error!(%reason, "fatal cluster error: shutting down");
        self.0.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Resolves with the reason once raised.
    pub async fn wait(&self) -> String {
        let mut rx = self.0.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or_default(),
            // The sender lives in self, so the channel cannot close while we wait.
            Err(_) => std::future::pending().await,
        }
    }

    /// The reason, if raised.
    pub fn reason(&self) -> Option<String> {
        self.0.borrow().clone()
    }
}
