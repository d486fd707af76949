//! [`OtlpConfig`]: where spans go and how the server is named there.

use std::time::Duration;

/// The endpoint used when neither the configuration nor `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
/// / `OTEL_EXPORTER_OTLP_ENDPOINT` name one: a collector or Jaeger on this host.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4317";

/// Settings of the OTLP/gRPC span export.
///
/// Built with [`OtlpConfig::new`] and the setters; the fields are public to read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpConfig {
    /// `service.name` of every span: the server type, as Pitaya v3 names its tracer.
    pub service_name: String,
    /// `service.instance.id`: the server id, when set.
    pub server_id: Option<String>,
    /// The collector's gRPC URL (`http://host:4317`). `None`: the standard
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` then `OTEL_EXPORTER_OTLP_ENDPOINT` variables,
    /// then [`DEFAULT_ENDPOINT`].
    pub endpoint: Option<String>,
    /// Bound on one export call (connect and send); spans of a batch that times out are
    /// dropped, never retried without end.
    pub timeout: Duration,
}

impl OtlpConfig {
    /// Export for a server of `server_type`, to the endpoint of the environment or
    /// [`DEFAULT_ENDPOINT`], with a 10-second export timeout.
    pub fn new(server_type: impl Into<String>) -> Self {
        Self {
            service_name: server_type.into(),
            server_id: None,
            endpoint: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Sets the server id reported as `service.instance.id`.
    #[must_use]
    pub fn server_id(mut self, id: impl Into<String>) -> Self {
        self.server_id = Some(id.into());
        self
    }

    /// Sets the collector's URL, overriding the environment.
    #[must_use]
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Sets the bound on one export call.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The endpoint the exporter will use: the configured one, else the environment's
    /// (`None`, left to the exporter, which reads the same variables), else the default.
    pub(crate) fn resolved_endpoint(&self) -> Option<String> {
        if let Some(url) = self.endpoint.as_ref().filter(|u| !u.is_empty()) {
            return Some(url.clone());
        }
        let from_env = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
            .iter()
            .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
        (!from_env).then(|| DEFAULT_ENDPOINT.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_endpoint_wins() {
        let cfg = OtlpConfig::new("game").server_id("g1").endpoint("http://127.0.0.1:9");
        assert_eq!(cfg.resolved_endpoint().as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(cfg.service_name, "game");
        assert_eq!(cfg.server_id.as_deref(), Some("g1"));
    }
}
