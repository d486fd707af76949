//! [`grpc_address`]: where to dial a server, from its service-discovery metadata (spec §7).

use pitaya_cluster::{
    GRPC_EXTERNAL_HOST_KEY, GRPC_EXTERNAL_PORT_KEY, GRPC_HOST_KEY, GRPC_PORT_KEY, REGION_KEY,
    Server,
};

/// The `(host, port)` to dial `target` at, as Go's gRPC client chooses it (spec §7), or
/// `None` when the chosen host or port is missing or empty.
///
/// - `target` has no `region` (or an empty one): its external address
///   (`grpc-external-host`, `grpc-external-port`) if an external host is set, otherwise
///   its internal one (`grpcHost`, `grpcPort`);
/// - `target` has a `region`: the internal address if that region equals `my_region`
///   (`pitaya.cluster.info.region`) or no external host is set, otherwise the external one.
///
/// The port is returned as written (a string in the metadata); it is not validated here.
/// Go treats an empty port as present and then fails every dial; here it means "no
/// address", with the same outcome for callers (the calls fail).
pub fn grpc_address(target: &Server, my_region: &str) -> Option<(String, String)> {
    let (host_key, port_key) = address_keys(target, my_region);
    let non_empty = |key: &str| target.metadata.get(key).filter(|v| !v.is_empty()).cloned();
    Some((non_empty(host_key)?, non_empty(port_key)?))
}

/// The metadata keys of the host and port [`grpc_address`] reads.
pub(crate) fn address_keys(target: &Server, my_region: &str) -> (&'static str, &'static str) {
    let set = |key: &str| target.metadata.get(key).filter(|v| !v.is_empty());
    let external = (GRPC_EXTERNAL_HOST_KEY, GRPC_EXTERNAL_PORT_KEY);
    let internal = (GRPC_HOST_KEY, GRPC_PORT_KEY);
    let has_external = set(GRPC_EXTERNAL_HOST_KEY).is_some();
    match set(REGION_KEY) {
        None if has_external => external,
        None => internal,
        Some(region) if region == my_region || !has_external => internal,
        Some(_) => external,
    }
}

/// The URI tonic dials for `host` and `port`: plaintext HTTP/2 (spec §7), an IPv6 literal
/// in brackets. `None` when the port is not a port number or the URI is invalid.
pub(crate) fn dial_uri(host: &str, port: &str) -> Option<String> {
    let port: u16 = port.trim().parse().ok()?;
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let uri = format!("http://{authority}");
    // The whole host must be the authority: "h/x" would parse as host "h" and a path.
    let parsed = uri.parse::<tonic::transport::Uri>().ok()?;
    (parsed.authority().map(|a| a.as_str()) == Some(authority.as_str())).then_some(uri)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const INTERNAL: (&str, &str) = ("10.0.0.1", "3434");
    const EXTERNAL: (&str, &str) = ("game.example.com", "443");

    fn server(pairs: &[(&str, &str)]) -> Server {
        let metadata: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Server { metadata, ..Server::new("game", false, BTreeMap::new()) }
    }

    fn both(region: Option<&str>) -> Server {
        let mut pairs = vec![
            (GRPC_HOST_KEY, INTERNAL.0),
            (GRPC_PORT_KEY, INTERNAL.1),
            (GRPC_EXTERNAL_HOST_KEY, EXTERNAL.0),
            (GRPC_EXTERNAL_PORT_KEY, EXTERNAL.1),
        ];
        pairs.extend(region.map(|r| (REGION_KEY, r)));
        server(&pairs)
    }

    fn pair(a: (&str, &str)) -> Option<(String, String)> {
        Some((a.0.to_owned(), a.1.to_owned()))
    }

    #[test]
    fn no_region_prefers_the_external_address() {
        assert_eq!(grpc_address(&both(None), "us"), pair(EXTERNAL));
        assert_eq!(grpc_address(&both(None), ""), pair(EXTERNAL));
        // An empty region is no region.
        assert_eq!(grpc_address(&both(Some("")), "us"), pair(EXTERNAL));
    }

    #[test]
    fn no_region_and_no_external_host_uses_the_internal_address() {
        let s = server(&[(GRPC_HOST_KEY, INTERNAL.0), (GRPC_PORT_KEY, INTERNAL.1)]);
        assert_eq!(grpc_address(&s, "us"), pair(INTERNAL));
        // An empty external host is no external host, whatever its port.
        let s = server(&[
            (GRPC_HOST_KEY, INTERNAL.0),
            (GRPC_PORT_KEY, INTERNAL.1),
            (GRPC_EXTERNAL_HOST_KEY, ""),
            (GRPC_EXTERNAL_PORT_KEY, EXTERNAL.1),
        ]);
        assert_eq!(grpc_address(&s, ""), pair(INTERNAL));
    }

    #[test]
    fn same_region_uses_the_internal_address() {
        assert_eq!(grpc_address(&both(Some("us")), "us"), pair(INTERNAL));
    }

    #[test]
    fn other_region_uses_the_external_address() {
        assert_eq!(grpc_address(&both(Some("us")), "eu"), pair(EXTERNAL));
        // A server of no region of its own sees every region as another one.
        assert_eq!(grpc_address(&both(Some("us")), ""), pair(EXTERNAL));
    }

    #[test]
    fn other_region_without_external_host_uses_the_internal_address() {
        let s =
            server(&[(REGION_KEY, "us"), (GRPC_HOST_KEY, INTERNAL.0), (GRPC_PORT_KEY, INTERNAL.1)]);
        assert_eq!(grpc_address(&s, "eu"), pair(INTERNAL));
    }

    #[test]
    fn a_missing_host_or_chosen_port_gives_no_address() {
        assert_eq!(grpc_address(&server(&[]), ""), None);
        assert_eq!(grpc_address(&server(&[(GRPC_PORT_KEY, "3434")]), ""), None);
        assert_eq!(grpc_address(&server(&[(GRPC_HOST_KEY, "h")]), ""), None);
        assert_eq!(grpc_address(&server(&[(GRPC_HOST_KEY, "h"), (GRPC_PORT_KEY, "")]), ""), None);
        // The external address is chosen, and its port is missing: the internal port is
        // not used instead.
        let s = server(&[
            (GRPC_HOST_KEY, INTERNAL.0),
            (GRPC_PORT_KEY, INTERNAL.1),
            (GRPC_EXTERNAL_HOST_KEY, EXTERNAL.0),
        ]);
        assert_eq!(grpc_address(&s, ""), None);
        assert_eq!(address_keys(&s, ""), (GRPC_EXTERNAL_HOST_KEY, GRPC_EXTERNAL_PORT_KEY));
        // The internal address is chosen, and its host is missing.
        let s = server(&[
            (REGION_KEY, "us"),
            (GRPC_PORT_KEY, INTERNAL.1),
            (GRPC_EXTERNAL_HOST_KEY, EXTERNAL.0),
        ]);
        assert_eq!(grpc_address(&s, "us"), None);
    }

    #[test]
    fn dial_uris() {
        assert_eq!(dial_uri("127.0.0.1", "3434").as_deref(), Some("http://127.0.0.1:3434"));
        assert_eq!(dial_uri("game-1.local", "80").as_deref(), Some("http://game-1.local:80"));
        assert_eq!(dial_uri("::1", "3434").as_deref(), Some("http://[::1]:3434"));
        assert_eq!(dial_uri("[::1]", "3434").as_deref(), Some("http://[::1]:3434"));
        assert_eq!(dial_uri("h", "abc"), None);
        assert_eq!(dial_uri("h", "70000"), None);
        assert_eq!(dial_uri("bad host", "1"), None);
        assert_eq!(dial_uri("h/x", "1"), None);
    }
}
