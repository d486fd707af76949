//! [`SharedPush`]: one push for many sessions, encoded once per wire variant.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use pitaya_codec::Message;

/// Wire variants cached per push. A server has one codec, or two with
/// `compressroutes.onlyifclientdoes` (routes as codes or as strings); more variants are
/// still served, encoded for each session that asks.
const VARIANTS: usize = 4;

/// A push to many sessions at once (a group broadcast, a push to many uids).
///
/// The message is encoded the first time a session of a given wire variant (its
/// connection's codec: dictionary, data compression) asks for it, and every later
/// session of that variant gets the same packet, shared rather than copied: encoding
/// costs once per variant actually in use, whatever the number of sessions. Handed to
/// sessions through [`Session::try_push_shared`](crate::Session::try_push_shared).
#[derive(Debug)]
pub struct SharedPush {
    message: Message,
    /// `(variant key, packet)`; `None` when the message cannot be encoded in that variant.
    packets: [OnceLock<(usize, Option<Arc<Bytes>>)>; VARIANTS],
}

impl SharedPush {
    /// A push of `data` on `route`, not encoded yet.
    pub fn new(route: &str, data: Bytes) -> Self {
        Self { message: Message::push(route, data), packets: Default::default() }
    }

    /// The push message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The whole packet (header included) of wire variant `key`, from `encode` the first
    /// time that variant is asked for. `key` names the encoder, and two encoders that can
    /// give different bytes must have different keys (the address of a codec that
    /// outlives the push does). `None` when `encode` failed for this variant.
    pub fn packet(
        &self,
        key: usize,
        encode: impl FnOnce(&Message) -> Option<Bytes>,
    ) -> Option<Arc<Bytes>> {
        let mut encode = Some(encode);
        for slot in &self.packets {
            let (k, packet) = slot.get_or_init(|| {
                let packet = encode.take().and_then(|f| f(&self.message)).map(Arc::new);
                (key, packet)
            });
            if *k == key {
                return packet.clone();
            }
        }
        // Every slot holds another variant: this session's packet is its own.
        encode.and_then(|f| f(&self.message)).map(Arc::new)
    }
}

/// Queues `push` on every session of `targets` without waiting for any of them, and
/// returns the uids it did not reach: no session here (`None`), or closed (see
/// [`Session::try_push_shared`](crate::Session::try_push_shared)). Sessions that cannot
/// queue without waiting (a backend's relayed ones) are pushed to together afterwards.
pub async fn fan_out<'a>(
    targets: impl IntoIterator<Item = (&'a str, Option<&'a crate::Session>)>,
    push: &SharedPush,
) -> Vec<String> {
    let mut failed = Vec::new();
    let mut waiting = Vec::new();
    for (uid, session) in targets {
        let Some(session) = session else {
            failed.push(uid.to_owned());
            continue;
        };
        match session.try_push_shared(push) {
            Some(Ok(())) => {}
            Some(Err(_)) => failed.push(uid.to_owned()),
            None => waiting.push((uid, session)),
        }
    }
    if !waiting.is_empty() {
        let msg = push.message();
        let pushes = waiting.into_iter().map(|(uid, session)| async move {
            session.push(&msg.route, msg.data.clone()).await.err().map(|_| uid.to_owned())
        });
        failed.extend(futures_util::future::join_all(pushes).await.into_iter().flatten());
    }
    failed
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn each_variant_is_encoded_once_and_shared() {
        let push = SharedPush::new("onMessage", Bytes::from_static(b"hi"));
        let calls = Cell::new(0);
        let encode = |tag: &'static [u8]| {
            let calls = &calls;
            move |m: &Message| {
                calls.set(calls.get() + 1);
                assert_eq!(m.route, "onMessage");
                Some(Bytes::from_static(tag))
            }
        };
        let a1 = push.packet(1, encode(b"a")).unwrap();
        let b1 = push.packet(2, encode(b"b")).unwrap();
        let a2 = push.packet(1, encode(b"x")).unwrap();
        assert!(Arc::ptr_eq(&a1, &a2));
        assert_eq!((&a1[..], &b1[..]), (&b"a"[..], &b"b"[..]));
        assert_eq!(calls.get(), 2);
        // Past the cached variants, each call encodes.
        for key in 3..=6 {
            assert_eq!(&push.packet(key, encode(b"c")).unwrap()[..], b"c");
        }
        assert_eq!(&push.packet(6, encode(b"d")).unwrap()[..], b"d");
        assert_eq!(calls.get(), 7);
    }

    #[test]
    fn a_failed_encoding_is_remembered() {
        let push = SharedPush::new("onMessage", Bytes::new());
        assert!(push.packet(1, |_| None).is_none());
        assert!(push.packet(1, |_| Some(Bytes::new())).is_none());
    }
}
