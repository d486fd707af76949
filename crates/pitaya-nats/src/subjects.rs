//! NATS subjects of the Pitaya cluster (spec §6.2).
//!
//! Each is a single NATS token in which `/` is a literal character. The `pitaya/` prefix
//! is fixed: it is not the etcd prefix, so clusters with different SD prefixes on one
//! NATS server share these subjects, as Go's do.

use pitaya_core::Error;

/// `pitaya/servers/<type>/<id>`: where a server receives its RPCs (`protos.Request`,
/// answered with a `protos.Response` on the reply subject).
pub fn server_subject(server_type: &str, server_id: &str) -> String {
    format!("pitaya/servers/{server_type}/{server_id}")
}

/// `pitaya/<frontendType>/user/<uid>/push`: pushes (`protos.Push`) to a user bound on any
/// frontend of `frontend_type`.
pub fn user_push_subject(frontend_type: &str, uid: &str) -> String {
    format!("pitaya/{frontend_type}/user/{uid}/push")
}

/// `pitaya/<frontendType>/user/<uid>/kick`: kicks (`protos.KickMsg`) of a user bound on any
/// frontend of `frontend_type`.
pub fn user_kick_subject(frontend_type: &str, uid: &str) -> String {
    format!("pitaya/{frontend_type}/user/{uid}/kick")
}

/// `pitaya/<svType>/bindings`: unique-session announcements (`protos.BindMsg`) among the
/// servers of `server_type` (spec §8.5).
pub fn bindings_subject(server_type: &str) -> String {
    format!("pitaya/{server_type}/bindings")
}

/// Refuses a subject the NATS protocol cannot carry as one subject.
///
/// Uids and server types reach subjects unescaped, as in Go. Whitespace or a control
/// character would split the protocol line (a uid could inject NATS commands), an empty
/// token is a protocol error, and a whole-token `*` or `>` would turn a user's
/// subscription into a wildcard that receives other users' messages.
pub(crate) fn check_subject(subject: &str) -> Result<(), Error> {
    let bad_char = subject.chars().any(|c| c.is_whitespace() || c.is_control());
    let bad_token = subject.split('.').any(|t| t.is_empty() || t == "*" || t == ">");
    if bad_char || bad_token {
        return Err(Error::unknown(format!("nats: invalid subject {subject:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_go() {
        assert_eq!(server_subject("game", "41aa"), "pitaya/servers/game/41aa");
        assert_eq!(user_push_subject("connector", "u1"), "pitaya/connector/user/u1/push");
        assert_eq!(user_kick_subject("connector", "d2"), "pitaya/connector/user/d2/kick");
        assert_eq!(bindings_subject("connector"), "pitaya/connector/bindings");
    }

    #[test]
    fn refuses_subjects_nats_cannot_carry() {
        for uid in ["a.b@c.com", "", "x.>", "*"] {
            assert!(check_subject(&user_push_subject("connector", uid)).is_ok(), "{uid:?}");
        }
        for uid in ["a b", "a\r\nPUB x 1", "x.*.y", "x.>.y", "a..b", "\u{7f}"] {
            assert!(check_subject(&user_push_subject("connector", uid)).is_err(), "{uid:?}");
        }
    }
}
