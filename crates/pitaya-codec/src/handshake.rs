//! The JSON handshake (spec §1.3, §1.4).
//!
//! The client sends a [`HandshakeRequest`] in a Handshake packet; the server answers with a
//! [`HandshakeResponse`]. The request is never compressed. The response may arrive
//! zlib- or gzip-compressed without any flag; [`HandshakeResponse::decode`] detects that.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::compression::{self, CompressionError};

/// Handshake response code for success.
pub const CODE_OK: u16 = 200;
/// Handshake response code for an undecodable request or a failed validator; the server
/// closes the connection right after sending it.
pub const CODE_BAD_REQUEST: u16 = 400;

/// What a client sends in its Handshake packet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandshakeRequest {
    /// Client and library description.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sys: ClientInfo,
    /// Application-defined handshake data, stored on the frontend session only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The `sys` object of a handshake request.
///
/// The four fields are strings; a number in any of them fails decoding (400), as in Go.
/// Unknown keys (the pomelo JS client's `type`, `version`, `rsa`) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Client platform, e.g. `"mac"`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub platform: String,
    /// Client library version.
    #[serde(rename = "libVersion", default, deserialize_with = "null_as_default")]
    pub lib_version: String,
    /// Application build number.
    #[serde(rename = "clientBuildNumber", default, deserialize_with = "null_as_default")]
    pub client_build_number: String,
    /// Application version.
    #[serde(rename = "clientVersion", default, deserialize_with = "null_as_default")]
    pub client_version: String,
    /// `sys.resume`, this project's opt-in session resume (not part of Go's protocol; see
    /// `docs/resume.md`). A value of any other shape, `false` included, reads as `None`:
    /// Go ignores the key, so a client sending it to a server without resume is served
    /// as if it had not.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "resume_request")]
    pub resume: Option<ResumeRequest>,
}

/// What a client asks for in `sys.resume` of its handshake (see `docs/resume.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeRequest {
    /// `true`: give this new session a resume token.
    Ask,
    /// `{"token": T, "received": N}`: continue the session of token `T`, whose client has
    /// read the server's Data packets 1 to `received`.
    Resume {
        /// The token of the session to continue.
        token: String,
        /// How many of the server's Data packets the client has read.
        received: u64,
    },
}

/// `sys.resume` of a handshake response: present only when the client asked for resume
/// and the server has it enabled (see `docs/resume.md`). Fields are declared in sorted
/// order, as the rest of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeGrant {
    /// On a resumed session, how many of the client's Data packets the server has read:
    /// the client re-sends the ones after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
    /// Whether an earlier session was continued (`true`) or a fresh one started
    /// (`false`); absent when the client only asked for a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<bool>,
    /// The token to resume this session with after a drop.
    pub token: String,
    /// How long, in whole seconds (rounded up), the session waits for a resume after a drop.
    pub ttl: u64,
}

mod resume_request {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ResumeRequest;

    #[derive(Serialize)]
    struct Wire<'a> {
        received: u64,
        token: &'a str,
    }

    // `with` needs both halves with these exact signatures.
    #[allow(clippy::ref_option)]
    pub(super) fn serialize<S: Serializer>(
        value: &Option<ResumeRequest>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            None => s.serialize_none(),
            Some(ResumeRequest::Ask) => s.serialize_bool(true),
            Some(ResumeRequest::Resume { token, received }) => {
                Wire { received: *received, token }.serialize(s)
            }
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        de: D,
    ) -> Result<Option<ResumeRequest>, D::Error> {
        let value = serde_json::Value::deserialize(de)?;
        Ok(match value {
            serde_json::Value::Bool(true) => Some(ResumeRequest::Ask),
            serde_json::Value::Object(map) => {
                let token = map.get("token").and_then(|t| t.as_str());
                let received = map.get("received").map_or(Some(0), serde_json::Value::as_u64);
                match (token, received) {
                    (Some(token), Some(received)) => {
                        Some(ResumeRequest::Resume { token: token.to_owned(), received })
                    }
                    _ => None,
                }
            }
            _ => None,
        })
    }
}

impl HandshakeRequest {
    /// Parses a handshake request body. The body is never inflated (spec §1.3).
    ///
    /// # Errors
    /// [`HandshakeError::Json`] for anything Go's decoder would refuse: an empty body,
    /// invalid JSON, a non-string `sys` field, a `user` that is not an object.
    pub fn decode(body: &[u8]) -> Result<Self, HandshakeError> {
        let json_err = |e: serde_json::Error| HandshakeError::Json(e.to_string());
        let value: serde_json::Value = serde_json::from_slice(body).map_err(json_err)?;
        // serde accepts a JSON array for a struct, Go does not: insist on objects.
        let is_object_or_null =
            |v: Option<&serde_json::Value>| v.is_none_or(|v| v.is_object() || v.is_null());
        if !value.is_object() || !is_object_or_null(value.get("sys")) {
            return Err(HandshakeError::Json("handshake sys and body must be json objects".into()));
        }
        serde_json::from_value(value).map_err(json_err)
    }

    /// The JSON body a client sends.
    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }
}

/// What the server answers to a handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeResponse {
    /// [`CODE_OK`] or [`CODE_BAD_REQUEST`].
    pub code: u16,
    /// Session parameters. Go always sends them, even with code 400.
    #[serde(default)]
    pub sys: HandshakeSys,
}

/// The `sys` object of a handshake response. Fields are declared in the sorted order Go's
/// map encoding produces, so the JSON matches Go's bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeSys {
    /// Route dictionary, sorted by route.
    #[serde(default)]
    pub dict: BTreeMap<String, u16>,
    /// Heartbeat interval; zero means no heartbeat.
    #[serde(default, serialize_with = "seconds_out", deserialize_with = "seconds_in")]
    pub heartbeat: Duration,
    /// Session resume (`docs/resume.md`): only when the client asked for it and the
    /// server has it enabled, so other clients see Go's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeGrant>,
    /// `"json"` or `"protobuf"`.
    #[serde(default = "json_name")]
    pub serializer: String,
}

impl Default for HandshakeSys {
    fn default() -> Self {
        Self {
            dict: BTreeMap::new(),
            heartbeat: Duration::ZERO,
            resume: None,
            serializer: json_name(),
        }
    }
}

impl HandshakeResponse {
    /// A response with `code` and the server's parameters.
    pub fn new(
        code: u16,
        heartbeat: Duration,
        dict: BTreeMap<String, u16>,
        serializer: &str,
    ) -> Self {
        Self {
            code,
            sys: HandshakeSys { dict, heartbeat, resume: None, serializer: serializer.to_owned() },
        }
    }

    /// This response with `sys.resume` set to `grant`.
    #[must_use]
    pub fn with_resume(mut self, grant: ResumeGrant) -> Self {
        self.sys.resume = Some(grant);
        self
    }

    /// The JSON body, byte for byte what Go sends, e.g.
    /// `{"code":200,"sys":{"dict":{},"heartbeat":30,"serializer":"json"}}`.
    ///
    /// It is not compressed: some pomelo clients cannot read a compressed handshake
    /// response, so the server should send this as is (see [`compression::deflate`] for
    /// those who want Go's behaviour).
    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }

    /// Parses a response body, inflating it first when it starts with zlib or gzip magic
    /// bytes, as libpitaya and Go's client do. Missing `sys` fields take their defaults
    /// (serializer `"json"`, no heartbeat).
    ///
    /// # Errors
    /// [`HandshakeError::Compression`] for a bad compressed body (inflated up to `limit`
    /// bytes), [`HandshakeError::Json`] for bad JSON.
    pub fn decode(body: &[u8], limit: usize) -> Result<Self, HandshakeError> {
        let inflated;
        let json = if compression::looks_compressed(body) {
            inflated = compression::inflate_auto(body, limit)?;
            &inflated[..]
        } else {
            body
        };
        serde_json::from_slice(json).map_err(|e| HandshakeError::Json(e.to_string()))
    }
}

/// Why a handshake body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The JSON does not match the expected shape.
    #[error("invalid handshake json: {0}")]
    Json(String),
    /// A compressed response could not be inflated.
    #[error(transparent)]
    Compression(#[from] CompressionError),
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs (string keys, finite numbers) cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn json_name() -> String {
    "json".to_owned()
}

fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// Go writes `Duration.Seconds()`, a float that prints without a decimal point when whole.
fn seconds_out<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    if d.subsec_nanos() == 0 {
        s.serialize_u64(d.as_secs())
    } else {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// Accepts an integer or a float number of seconds; negative or absurd values mean "none".
fn seconds_in<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let secs = Option::<f64>::deserialize(de)?.unwrap_or(0.0);
    Ok(Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_bytes_match_go() {
        let r = HandshakeResponse::new(200, Duration::from_secs(30), BTreeMap::new(), "json");
        let json = r.encode();
        assert_eq!(json, br#"{"code":200,"sys":{"dict":{},"heartbeat":30,"serializer":"json"}}"#);
        assert_eq!(json.len(), 65);
        let dict = BTreeMap::from([("b".to_owned(), 2), ("a".to_owned(), 1)]);
        let r = HandshakeResponse::new(400, Duration::from_millis(1500), dict, "protobuf");
        assert_eq!(
            r.encode(),
            br#"{"code":400,"sys":{"dict":{"a":1,"b":2},"heartbeat":1.5,"serializer":"protobuf"}}"#
        );
    }

    #[test]
    fn resume_keys_sort_like_the_rest() {
        let r = HandshakeResponse::new(200, Duration::from_secs(30), BTreeMap::new(), "json")
            .with_resume(ResumeGrant {
                received: Some(3),
                resumed: Some(true),
                token: "t2".into(),
                ttl: 30,
            });
        assert_eq!(
            r.encode(),
            br#"{"code":200,"sys":{"dict":{},"heartbeat":30,"resume":{"received":3,"resumed":true,"token":"t2","ttl":30},"serializer":"json"}}"#
        );
        assert_eq!(HandshakeResponse::decode(&r.encode(), 4096).unwrap(), r);
    }

    #[test]
    fn resume_request_shapes() {
        let ask = HandshakeRequest::decode(br#"{"sys":{"platform":"x","resume":true}}"#).unwrap();
        assert_eq!(ask.sys.resume, Some(ResumeRequest::Ask));
        let back = HandshakeRequest::decode(&ask.encode()).unwrap();
        assert_eq!(back, ask);
        let resume =
            HandshakeRequest::decode(br#"{"sys":{"resume":{"token":"abc","received":7}}}"#)
                .unwrap();
        let want = ResumeRequest::Resume { token: "abc".into(), received: 7 };
        assert_eq!(resume.sys.resume, Some(want));
        assert_eq!(HandshakeRequest::decode(&resume.encode()).unwrap(), resume);
        // Shapes Go would ignore read as no resume, never as an error.
        for other in [
            &br#"{"sys":{"resume":false}}"#[..],
            br#"{"sys":{"resume":1}}"#,
            br#"{"sys":{"resume":{"token":3}}}"#,
            br#"{"sys":{"resume":{"token":"a","received":-1}}}"#,
            br#"{"sys":{"resume":null}}"#,
        ] {
            let r = HandshakeRequest::decode(other).unwrap();
            assert_eq!(r.sys.resume, None, "{}", String::from_utf8_lossy(other));
        }
        // Without resume, the request encodes as before.
        assert!(
            !String::from_utf8(HandshakeRequest::default().encode()).unwrap().contains("resume")
        );
    }

    #[test]
    fn response_decodes_plain_zlib_and_gzip() {
        let r = HandshakeResponse::new(
            200,
            Duration::from_secs(10),
            BTreeMap::from([("a".into(), 1)]),
            "json",
        );
        let json = r.encode();
        assert_eq!(HandshakeResponse::decode(&json, 4096).unwrap(), r);
        assert_eq!(HandshakeResponse::decode(&compression::deflate(&json), 4096).unwrap(), r);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &json).unwrap();
        assert_eq!(HandshakeResponse::decode(&gz.finish().unwrap(), 4096).unwrap(), r);
    }

    #[test]
    fn response_defaults() {
        let r = HandshakeResponse::decode(br#"{"code":200}"#, 100).unwrap();
        assert_eq!(r.sys, HandshakeSys::default());
        assert_eq!(r.sys.serializer, "json");
        let r = HandshakeResponse::decode(br#"{"code":200,"sys":{"heartbeat":-3}}"#, 100).unwrap();
        assert_eq!(r.sys.heartbeat, Duration::ZERO);
    }

    #[test]
    fn request_like_libpitaya_and_pomelo() {
        let lib = br#"{"sys":{"platform":"mac","libVersion":"0.3.5-release","clientBuildNumber":"20","clientVersion":"2.1"},"user":{"age":30}}"#;
        let r = HandshakeRequest::decode(lib).unwrap();
        assert_eq!(r.sys.platform, "mac");
        assert_eq!(r.sys.lib_version, "0.3.5-release");
        assert_eq!(r.user.unwrap()["age"], 30);

        let pomelo = br#"{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{}},"user":{}}"#;
        let r = HandshakeRequest::decode(pomelo).unwrap();
        assert_eq!(r.sys, ClientInfo::default());

        let r = HandshakeRequest::decode(br#"{"sys":null,"user":null}"#).unwrap();
        assert_eq!(r, HandshakeRequest::default());
    }

    #[test]
    fn request_rejections() {
        for bad in
            [&b""[..], b"{", b"[]", br#"{"sys":{"platform":1}}"#, br#"{"user":3}"#, br#"{} x"#]
        {
            assert!(HandshakeRequest::decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn request_round_trip() {
        let r = HandshakeRequest {
            sys: ClientInfo {
                platform: "rust".into(),
                lib_version: "0.1.0".into(),
                ..Default::default()
            },
            user: None,
        };
        assert_eq!(HandshakeRequest::decode(&r.encode()).unwrap(), r);
    }
}
