//! Property tests for the serializers: round trips, and arbitrary bytes never panic.

use std::collections::BTreeMap;

use pitaya_serialize::session_data;
use pitaya_serialize::{ErrorPayload, Json, Protobuf, Serializer, gojson};
use proptest::prelude::*;

fn error_payload() -> impl Strategy<Value = ErrorPayload> {
    (".{0,20}", ".{0,40}", proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4)).prop_map(
        |(code, msg, metadata): (String, String, BTreeMap<String, String>)| ErrorPayload {
            code,
            msg,
            metadata,
        },
    )
}

proptest! {
    #[test]
    fn error_payloads_round_trip(e in error_payload()) {
        for s in [&Json as &dyn Serializer, &Protobuf] {
            prop_assert_eq!(s.decode_error(&s.encode_error(&e)), Ok(e.clone()));
        }
    }

    #[test]
    fn go_json_is_valid_json(s in ".{0,40}", f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let v = serde_json::json!({"s": s, "f": f});
        let bytes = gojson::to_vec(&v).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        // Go writes whole floats without ".0", so compare numbers by value.
        prop_assert_eq!(back["s"].as_str(), Some(s.as_str()));
        prop_assert_eq!(back["f"].as_f64(), Some(f));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Json.decode_error(&bytes);
        let _ = Protobuf.decode_error(&bytes);
        if let Ok(data) = session_data::decode(&bytes) {
            prop_assert_eq!(session_data::decode(&session_data::encode(&data)), Ok(data));
        }
    }
}
