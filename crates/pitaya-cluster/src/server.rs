//! [`Server`]: one server as service discovery publishes it (spec §5.2).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// SD metadata key of the internal gRPC host.
pub const GRPC_HOST_KEY: &str = "grpcHost";
/// SD metadata key of the internal gRPC port (a string).
pub const GRPC_PORT_KEY: &str = "grpcPort";
/// SD metadata key of the external gRPC host.
pub const GRPC_EXTERNAL_HOST_KEY: &str = "grpc-external-host";
/// SD metadata key of the external gRPC port.
pub const GRPC_EXTERNAL_PORT_KEY: &str = "grpc-external-port";
/// SD metadata key of the server's region.
pub const REGION_KEY: &str = "region";

/// A server of the cluster. Its JSON form is the etcd value Go Pitaya writes and reads:
/// fields in the order `id`, `type`, `metadata`, `frontend`, `hostname`, compact, metadata
/// keys sorted. Missing fields read as empty, and `"metadata":null` as `{}`; a metadata
/// value that is not a string makes the record invalid, as in Go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// A UUID v4 generated at each start; also the last segment of the etcd key.
    #[serde(default)]
    pub id: String,
    /// The server type (`connector`, `game`, ...).
    #[serde(default, rename = "type")]
    pub server_type: String,
    /// Application metadata (gRPC address, region, ...).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Whether clients connect to this server.
    #[serde(default)]
    pub frontend: bool,
    /// The machine's host name.
    #[serde(default)]
    pub hostname: String,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

impl Server {
    /// A server of `server_type` with a fresh UUID v4 id and this machine's host name.
    pub fn new(
        server_type: impl Into<String>,
        frontend: bool,
        metadata: BTreeMap<String, String>,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            server_type: server_type.into(),
            metadata,
            frontend,
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
        }
    }

    /// The record as Go encodes it.
    pub fn to_json(&self) -> String {
        let bytes = pitaya_serialize::gojson::to_vec(self).unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }

    /// Parses a record written by any Pitaya server.
    ///
    /// # Errors
    /// When the bytes are not such a record.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_go() {
        let s = Server {
            id: "41aa4a8e-0f0d-4f26-9453-38815c07f4ef".into(),
            server_type: "game".into(),
            metadata: [("grpcPort".into(), "3434".into()), ("grpcHost".into(), "127.0.0.1".into())]
                .into(),
            frontend: false,
            hostname: "vm".into(),
        };
        assert_eq!(
            s.to_json(),
            r#"{"id":"41aa4a8e-0f0d-4f26-9453-38815c07f4ef","type":"game","metadata":{"grpcHost":"127.0.0.1","grpcPort":"3434"},"frontend":false,"hostname":"vm"}"#
        );
        assert_eq!(Server::from_json(s.to_json().as_bytes()).unwrap(), s);
    }

    #[test]
    fn lenient_like_go() {
        let s = Server::from_json(br#"{"id":"x","type":"fake"}"#).unwrap();
        assert_eq!((s.id.as_str(), s.server_type.as_str(), s.frontend), ("x", "fake", false));
        assert!(Server::from_json(br#"{"id":"x","metadata":null}"#).unwrap().metadata.is_empty());
        assert!(Server::from_json(br#"{"id":"x","metadata":{"grpcPort":3440}}"#).is_err());
        assert!(Server::from_json(b"not json").is_err());
    }

    #[test]
    fn new_servers_get_uuid_v4_ids() {
        let a = Server::new("connector", true, BTreeMap::new());
        let b = Server::new("connector", true, BTreeMap::new());
        assert_ne!(a.id, b.id);
        assert_eq!(uuid::Uuid::parse_str(&a.id).unwrap().get_version_num(), 4);
    }
}
