//! Golden bytes from Go Pitaya's tests (`pkg/serialize/protobuf`, `pkg/service`,
//! `pkg/session`, `pkg/context` fixtures), copied into `tests/fixtures/`, one test per file.

use std::path::PathBuf;

use pitaya_protos::{protos, test::SomeStruct};
use pitaya_serialize::session_data::{self, SessionData};
use pitaya_serialize::{Marshal, Protobuf, Unmarshal, gojson};
use serde_json::{Value, json};

fn fixture(path: &str) -> Vec<u8> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {} is missing: {e}", full.display()))
}

// --- protobuf serializer -------------------------------------------------------------

#[test]
fn test_ok() {
    let golden = fixture("protobuf/test_ok.golden");
    let expected = protos::Response {
        data: "data".into(),
        error: Some(protos::Error { msg: "error".into(), ..Default::default() }),
    };
    assert_eq!(Protobuf.marshal(&expected).unwrap(), golden);
    assert_eq!(
        <Protobuf as Unmarshal<protos::Response>>::unmarshal(&Protobuf, &golden),
        Ok(expected)
    );
}

fn some_struct_round_trip(file: &str, expected: SomeStruct) {
    let golden = fixture(file);
    assert_eq!(Protobuf.unmarshal(&golden), Ok(expected.clone()), "decoding {file}");
    assert_eq!(Protobuf.marshal(&expected).unwrap(), golden, "encoding {file}");
}

#[test]
fn unmarshal_remote_test_1() {
    some_struct_round_trip(
        "service/unmarshal_remote_test_1.golden",
        SomeStruct { a: 1, b: "blah".into() },
    );
}

#[test]
fn unmarshal_remote_test_2() {
    some_struct_round_trip(
        "service/unmarshal_remote_test_2.golden",
        SomeStruct { a: 1, b: "aaa".into() },
    );
}

#[test]
fn unmarshal_remote_test_3() {
    some_struct_round_trip(
        "service/unmarshal_remote_test_3.golden",
        SomeStruct { a: 0, b: "aab".into() },
    );
}

// --- session data (spec §8.2) ----------------------------------------------------------

fn data(value: Value) -> SessionData {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// `Session.SetData`: encoding the map gives the golden bytes.
fn set_data(file: &str, expected: SessionData) {
    assert_eq!(session_data::encode(&expected), fixture(file), "encoding {file}");
}

/// `Session.UpdateEncodedData`: decoding the golden bytes gives the map, which re-encodes
/// to the same bytes.
fn update_encoded_data(file: &str, expected: SessionData) {
    let golden = fixture(file);
    let decoded = session_data::decode(&golden).unwrap();
    assert_eq!(decoded, expected, "decoding {file}");
    assert_eq!(session_data::encode(&decoded), golden, "re-encoding {file}");
}

fn byte_data() -> SessionData {
    data(json!({ "byte": session_data::bytes_value(&[1]) }))
}

#[derive(serde::Serialize)]
struct GoStruct {
    #[serde(rename = "A")]
    a: i32,
    #[serde(rename = "B")]
    b: String,
}

fn struct_data() -> SessionData {
    data(json!({ "struct": GoStruct { a: 1, b: "aaa".into() } }))
}

#[test]
fn test_session_set_data_1() {
    set_data("session/testSessionSetData_1.golden", byte_data());
}

#[test]
fn test_session_set_data_2() {
    set_data("session/testSessionSetData_2.golden", data(json!({"int": 1})));
}

#[test]
fn test_session_set_data_3() {
    set_data("session/testSessionSetData_3.golden", struct_data());
}

#[test]
fn test_session_set_data_4() {
    set_data("session/testSessionSetData_4.golden", data(json!({"string": "aaa"})));
}

#[test]
fn test_session_set_data_5() {
    set_data("session/testSessionSetData_5.golden", SessionData::new());
}

#[test]
fn test_update_encoded_data_1() {
    update_encoded_data("session/testUpdateEncodedData_1.golden", byte_data());
    let decoded = session_data::decode(&fixture("session/testUpdateEncodedData_1.golden")).unwrap();
    assert_eq!(session_data::value_bytes(&decoded["byte"]), Some(vec![1]));
}

#[test]
fn test_update_encoded_data_2() {
    update_encoded_data("session/testUpdateEncodedData_2.golden", data(json!({"int": 1})));
}

#[test]
fn test_update_encoded_data_3() {
    update_encoded_data("session/testUpdateEncodedData_3.golden", struct_data());
}

#[test]
fn test_update_encoded_data_4() {
    update_encoded_data("session/testUpdateEncodedData_4.golden", data(json!({"string": "aaa"})));
}

#[test]
fn test_update_encoded_data_5() {
    update_encoded_data("session/testUpdateEncodedData_5.golden", SessionData::new());
}

// --- propagated context (spec §6.5) ----------------------------------------------------

#[test]
fn one_element() {
    let golden = fixture("context/one_element.golden");
    let ctx = json!({"key1": "val1"});
    assert_eq!(gojson::to_vec(&ctx).unwrap(), golden);
    assert_eq!(serde_json::from_slice::<Value>(&golden).unwrap(), ctx);
}
