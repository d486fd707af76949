//! The etcd key layout of groups (spec §9).

/// `<prefix>groups/<name>`: the group itself, value `""`, leased when it has a TTL.
pub(super) fn group_key(prefix: &str, name: &str) -> String {
    // Plain concatenation, like Go's namespaced client.
    format!("{prefix}groups/{name}")
}

/// `<prefix>groups/<name>/uids/`: the range holding the members.
pub(super) fn members_prefix(prefix: &str, name: &str) -> String {
    format!("{prefix}groups/{name}/uids/")
}

/// `<prefix>groups/<name>/uids/<uid>`: one member, value `""`, on the group's lease.
pub(super) fn member_key(prefix: &str, name: &str, uid: &str) -> String {
    format!("{prefix}groups/{name}/uids/{uid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_matches_go() {
        assert_eq!(group_key("pitaya/", "room1"), "pitaya/groups/room1");
        assert_eq!(members_prefix("pitaya/", "room1"), "pitaya/groups/room1/uids/");
        assert_eq!(member_key("pitaya/", "room1", "alice"), "pitaya/groups/room1/uids/alice");
        assert_eq!(group_key("pv1", "g"), "pv1groups/g");
    }
}
