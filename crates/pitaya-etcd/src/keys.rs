//! The etcd key layout of a server record (spec §5.1).

/// The folder every server key lives under, below the configured prefix.
const SERVERS: &str = "servers";

/// `<prefix>servers/`: the range the discovery lists and watches.
pub(crate) fn servers_prefix(prefix: &str) -> String {
    // Plain concatenation, like Go's namespaced client: a prefix without a trailing `/`
    // yields `pv1servers/...` in Go too, and both must agree on the key.
    format!("{prefix}{SERVERS}/")
}

/// `<prefix>servers/<type>/<id>`.
pub(crate) fn server_key(prefix: &str, server_type: &str, id: &str) -> String {
    format!("{prefix}{SERVERS}/{server_type}/{id}")
}

/// The `(type, id)` of a server key, or `None` when the key is not one.
///
/// Spec §5.1: the remainder after the prefix must split into exactly 3 `/`-separated
/// parts; Go ignores any other key under the watched range (e.g. 4 parts).
pub(crate) fn parse_server_key<'k>(prefix: &str, key: &'k str) -> Option<(&'k str, &'k str)> {
    let rest = key.strip_prefix(prefix)?;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(SERVERS), Some(server_type), Some(id), None) => Some((server_type, id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_matches_go() {
        assert_eq!(servers_prefix("pitaya/"), "pitaya/servers/");
        assert_eq!(server_key("pitaya/", "game", "41aa"), "pitaya/servers/game/41aa");
        assert_eq!(server_key("pv1", "game", "x"), "pv1servers/game/x");
    }

    #[test]
    fn parses_exactly_three_parts() {
        assert_eq!(parse_server_key("p/", "p/servers/game/x"), Some(("game", "x")));
        assert_eq!(parse_server_key("p/", "p/servers/game/x/y"), None);
        assert_eq!(parse_server_key("p/", "p/servers/game"), None);
        assert_eq!(parse_server_key("p/", "q/servers/game/x"), None);
        assert_eq!(parse_server_key("p/", "p/other/game/x"), None);
        // Go accepts empty parts as long as there are three of them.
        assert_eq!(parse_server_key("p/", "p/servers//x"), Some(("", "x")));
    }
}
