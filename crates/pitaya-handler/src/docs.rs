//! Self-description of a server (Go's `pitaya.Documentation` and `pitaya.Descriptor`):
//! which routes exist, what they take and return, and the protobuf descriptors of those
//! types, served on two routes so that tools such as `pitaya-cli` need no local `.proto`.
//!
//! Rust has no reflection, so every handler records the [`std::any::type_name`] of its
//! payload extractor and of its return type when it is registered ([`Signature`]). A
//! [`Docs`] value maps some of those Rust types to protobuf message names and holds the
//! file descriptors that define them. [`Docs::document`] then renders the JSON document
//! in the shape Go's doc generator gives it:
//!
//! ```json
//! {"handlers": {"connector.room.join": {"input": null,
//!                                       "output": [{"*echo.Code": {"code": "int32"}}, "error"]}},
//!  "remotes": {}}
//! ```
//!
//! A key starting with `*` names a protobuf message (Go writes pointer types that way):
//! the payload travels as protobuf on this server. Other keys are Rust type names, for
//! people to read. Notify handlers have an empty `output`.
//!
//! [`Docs::component`] builds the component serving it, with two methods:
//! - `docs`: no argument; replies `protos.Doc{doc: <the JSON document>}`;
//! - `descriptors`: takes `protos.ProtoNames` and replies `protos.ProtoDescriptors`, one
//!   gzip-compressed `FileDescriptorProto` per name, in order (as Go's CLI expects). A name
//!   is a message's full name (the file that defines it) or a file name (for imports).
//!
//! Both reply in the server's serializer ([`Msg`]); in JSON, descriptor bytes are base64,
//! as Go's `encoding/json` writes `[]byte`.

use std::any::type_name;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, OnceLock};

use pitaya_core::Error;
use prost::Message;
use serde_json::{Value, json};

pub use prost_types;
use prost_types::{FileDescriptorProto, FileDescriptorSet, field_descriptor_proto};

use crate::{Component, HandlerKind, Msg};

/// Rust types a handler or remote was registered with, recorded for documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// Request or notify (remotes are requests).
    pub kind: HandlerKind,
    /// Type name of the payload extractor (`Json<T>`, `Proto<T>`, `Msg<T>`, `Bytes`...);
    /// `None` when the handler reads no payload.
    pub input: Option<&'static str>,
    /// Type name of what the function returns (`Result<Msg<T>, Error>`, `()`...).
    pub output: Option<&'static str>,
}

impl Signature {
    /// A signature from the handler's payload extractor `I` and return type `O`.
    pub fn of<I: ?Sized, O: ?Sized>(kind: HandlerKind) -> Self {
        Self { kind, input: Some(type_name::<I>()), output: Some(type_name::<O>()) }
    }

    /// A signature for a function that reads no payload and returns `O`.
    pub fn without_input<O: ?Sized>(kind: HandlerKind) -> Self {
        Self { kind, input: None, output: Some(type_name::<O>()) }
    }
}

/// What the `docs` method replies: `protos.Doc` (spec §6.4).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct DocReply {
    /// The JSON document.
    #[prost(string, tag = "1")]
    #[serde(default)]
    pub doc: String,
}

/// What the `descriptors` method takes: `protos.ProtoNames`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct ProtoNames {
    /// Message full names or file names.
    #[prost(string, repeated, tag = "1")]
    #[serde(default)]
    pub name: Vec<String>,
}

/// What the `descriptors` method replies: `protos.ProtoDescriptors`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct ProtoDescriptors {
    /// gzip-compressed `FileDescriptorProto`s, one per requested name.
    #[prost(bytes = "vec", repeated, tag = "1")]
    #[serde(default, with = "base64_list")]
    pub desc: Vec<Vec<u8>>,
}

/// The documentation of a server: protobuf descriptors and the Rust types they describe.
///
/// Pitaya's own `protos` package (`Doc`, `ProtoNames`, `ProtoDescriptors`...) is always
/// known, so a client can find the `descriptors` route in any document.
#[derive(Debug, Clone)]
pub struct Docs {
    files: Vec<FileDescriptorProto>,
    names: HashMap<&'static str, String>,
}

impl Default for Docs {
    fn default() -> Self {
        Self::new()
    }
}

impl Docs {
    /// Documentation knowing only Pitaya's own messages.
    pub fn new() -> Self {
        let own = FileDescriptorSet::decode(pitaya_protos::FILE_DESCRIPTOR_SET)
            .map(|set| set.file)
            .unwrap_or_default();
        Self { files: own, names: HashMap::new() }
            .message::<DocReply>("protos.Doc")
            .message::<ProtoNames>("protos.ProtoNames")
            .message::<ProtoDescriptors>("protos.ProtoDescriptors")
    }

    /// Adds the files of a descriptor set (e.g. from `protox::compile` or
    /// `protoc --descriptor_set_out`). A file already known by name is kept as it was.
    pub fn descriptors(mut self, set: FileDescriptorSet) -> Self {
        for file in set.file {
            if !self.files.iter().any(|f| f.name == file.name) {
                self.files.push(file);
            }
        }
        self
    }

    /// Adds an encoded `FileDescriptorSet`.
    ///
    /// # Errors
    /// `PIT-000` when the bytes do not decode.
    pub fn descriptor_set_bytes(self, bytes: &[u8]) -> Result<Self, Error> {
        let set = FileDescriptorSet::decode(bytes)
            .map_err(|e| Error::unknown(format!("bad file descriptor set: {e}")))?;
        Ok(self.descriptors(set))
    }

    /// Declares that the Rust type `T` is the protobuf message `full_name`
    /// (`package.Message`), which one of the added files should define.
    pub fn message<T: ?Sized + 'static>(mut self, full_name: impl Into<String>) -> Self {
        self.names.insert(type_name::<T>(), full_name.into());
        self
    }

    /// The JSON document of `handlers` and `remotes` (`service.method` with signature),
    /// keyed by `server_type.service.method`. `protobuf` tells whether the server's
    /// serializer is protobuf, which decides how [`Msg`] payloads travel.
    pub fn document(
        &self,
        server_type: &str,
        protobuf: bool,
        handlers: &[(String, Signature)],
        remotes: &[(String, Signature)],
    ) -> Value {
        let render = |entries: &[(String, Signature)], remote: bool| {
            let mut out = serde_json::Map::new();
            for (route, sig) in entries {
                let input = sig.input.map_or(Value::Null, |t| self.describe(t, protobuf || remote));
                let output = match (sig.kind, sig.output) {
                    (HandlerKind::Request, Some(t)) => {
                        json!([self.describe(t, protobuf || remote), "error"])
                    }
                    _ => json!([]),
                };
                let key = format!("{server_type}.{route}");
                out.insert(key, json!({"input": input, "output": output}));
            }
            Value::Object(out)
        };
        json!({"handlers": render(handlers, false), "remotes": render(remotes, true)})
    }

    /// The component serving this documentation as `name.docs` and `name.descriptors`.
    /// The document is rendered later by the caller and set through the returned cell,
    /// so that it can include the component's own routes.
    pub fn component(self, name: &str) -> (Component, Arc<OnceLock<String>>) {
        let doc = Arc::new(OnceLock::new());
        let cell = doc.clone();
        let files = Arc::new(self.files);
        let component = Component::new(name)
            .handler("docs", move || {
                let doc = cell.get().cloned().unwrap_or_default();
                async move { Ok::<_, Error>(Msg(DocReply { doc })) }
            })
            .handler("descriptors", move |Msg(names): Msg<ProtoNames>| {
                let files = files.clone();
                async move { descriptors_for(&files, &names.name).map(Msg) }
            });
        (component, doc)
    }

    /// `{"<name>": {fields}}` for the payload type `rust` (a full Rust type name).
    fn describe(&self, rust: &str, protobuf: bool) -> Value {
        let (wire, inner) = payload_type(rust);
        let as_proto = match wire {
            Wire::Proto => true,
            Wire::Serializer => protobuf,
            Wire::Json | Wire::Raw => false,
        };
        if let Some(name) = self.names.get(inner).filter(|_| as_proto) {
            let fields = find_message(&self.files, name)
                .map(|(_, msg)| message_fields(msg))
                .unwrap_or_default();
            return json!({ format!("*{name}"): fields });
        }
        json!({ inner: {} })
    }
}

/// How a payload travels, from its extractor wrapper.
enum Wire {
    Json,
    Proto,
    Serializer,
    Raw,
}

/// Unwraps `Result<W<T>, E>`, `Option<..>` and `Valid<..>` down to the payload type `T`
/// and the wrapper `W` that decides its encoding.
fn payload_type(mut ty: &str) -> (Wire, &str) {
    loop {
        let Some((head, args)) = split_generic(ty) else {
            let wire = if ty.ends_with("Bytes") || ty.starts_with("alloc::vec::Vec<u8") {
                Wire::Raw
            } else {
                Wire::Json
            };
            return (wire, ty);
        };
        let first = args.first().copied().unwrap_or(ty);
        match head.rsplit("::").next().unwrap_or(head) {
            "Result" | "Option" | "Valid" => ty = first,
            "Json" => return (Wire::Json, first),
            "Proto" => return (Wire::Proto, first),
            "Msg" => return (Wire::Serializer, first),
            _ => return (Wire::Json, ty),
        }
    }
}

/// `a::B<C, D<E>>` into `("a::B", ["C", "D<E>"])`; `None` without generics.
fn split_generic(ty: &str) -> Option<(&str, Vec<&str>)> {
    let open = ty.find('<')?;
    let inner = ty.get(open + 1..ty.len().checked_sub(1)?)?;
    let (mut depth, mut start, mut args) = (0usize, 0usize, Vec::new());
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                args.push(inner.get(start..i)?.trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    args.push(inner.get(start..)?.trim());
    Some((ty.get(..open)?, args))
}

/// The file defining message `full_name`, and the message.
fn find_message<'a>(
    files: &'a [FileDescriptorProto],
    full_name: &str,
) -> Option<(&'a FileDescriptorProto, &'a prost_types::DescriptorProto)> {
    fn walk<'a>(
        prefix: &str,
        msgs: &'a [prost_types::DescriptorProto],
        want: &str,
    ) -> Option<&'a prost_types::DescriptorProto> {
        msgs.iter().find_map(|m| {
            let name = format!("{prefix}{}", m.name());
            if name == want {
                return Some(m);
            }
            walk(&format!("{name}."), &m.nested_type, want)
        })
    }
    files.iter().find_map(|f| {
        let prefix =
            if f.package().is_empty() { String::new() } else { format!("{}.", f.package()) };
        walk(&prefix, &f.message_type, full_name).map(|m| (f, m))
    })
}

/// `{"field": "type"}` of a message, types as `.proto` spells them.
fn message_fields(msg: &prost_types::DescriptorProto) -> Value {
    use field_descriptor_proto::{Label, Type};
    let fields: BTreeMap<String, String> = msg
        .field
        .iter()
        .map(|f| {
            let ty = match f.r#type() {
                Type::Message | Type::Enum => f.type_name().trim_start_matches('.').to_owned(),
                other => other.as_str_name().trim_start_matches("TYPE_").to_ascii_lowercase(),
            };
            let ty = if f.label() == Label::Repeated { format!("repeated {ty}") } else { ty };
            (f.name().to_owned(), ty)
        })
        .collect();
    json!(fields)
}

/// One gzip-compressed file descriptor per name, in order.
fn descriptors_for(
    files: &[FileDescriptorProto],
    names: &[String],
) -> Result<ProtoDescriptors, Error> {
    let mut desc = Vec::with_capacity(names.len());
    for name in names {
        let file = files
            .iter()
            .find(|f| f.name() == name)
            .or_else(|| find_message(files, name).map(|(f, _)| f))
            .ok_or_else(|| {
                Error::not_found("no descriptor for this name").with_metadata("name", name)
            })?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&file.encode_to_vec()).map_err(|e| Error::internal(e.to_string()))?;
        desc.push(gz.finish().map_err(|e| Error::internal(e.to_string()))?);
    }
    Ok(ProtoDescriptors { desc })
}

/// serde for `repeated bytes` as a list of base64 strings (Go's `encoding/json`).
mod base64_list {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| STANDARD.encode(b)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
    struct Join {
        #[prost(string, tag = "1")]
        name: String,
    }

    #[test]
    fn payload_types_unwrap_wrappers() {
        let (w, t) = payload_type(type_name::<Result<Msg<Join>, Error>>());
        assert!(matches!(w, Wire::Serializer));
        assert_eq!(t, type_name::<Join>());
        let (w, t) = payload_type(type_name::<crate::Json<Vec<String>>>());
        assert!(matches!(w, Wire::Json));
        assert_eq!(t, type_name::<Vec<String>>());
        assert!(matches!(payload_type(type_name::<bytes::Bytes>()).0, Wire::Raw));
        assert!(matches!(
            payload_type(type_name::<Result<crate::Proto<Join>, Error>>()).0,
            Wire::Proto
        ));
    }

    #[test]
    fn document_marks_protobuf_types_and_lists_fields() {
        let docs = Docs::new();
        let handlers = vec![
            (
                "docs.docs".to_owned(),
                Signature::without_input::<Result<Msg<DocReply>, Error>>(HandlerKind::Request),
            ),
            ("room.ping".to_owned(), Signature::of::<bytes::Bytes, ()>(HandlerKind::Notify)),
        ];
        let doc = docs.document("connector", true, &handlers, &[]);
        let h = &doc["handlers"];
        assert_eq!(h["connector.docs.docs"]["output"][0]["*protos.Doc"]["doc"], "string");
        assert_eq!(h["connector.docs.docs"]["input"], Value::Null);
        assert_eq!(h["connector.room.ping"]["output"], json!([]));
        assert_eq!(h["connector.room.ping"]["input"]["bytes::bytes::Bytes"], json!({}));
        // With the JSON serializer, `Msg` payloads are JSON: no `*` key.
        let doc = docs.document("connector", false, &handlers, &[]);
        assert!(doc["handlers"]["connector.docs.docs"]["output"][0].get("*protos.Doc").is_none());
    }

    #[test]
    fn remotes_are_protobuf_whatever_the_serializer() {
        use pitaya_protos::test::{TestRequest, TestResponse};
        let remote = crate::RemoteComponent::new("svc").remote(
            "echo",
            |_r: crate::RemoteRequest, a: TestRequest| async move {
                Ok(TestResponse { code: 200, msg: a.msg })
            },
        );
        let docs = Docs::new()
            .message::<TestRequest>("test.TestRequest")
            .message::<TestResponse>("test.TestResponse");
        let remotes: Vec<_> =
            remote.signatures().into_iter().map(|(m, s)| (format!("svc.{m}"), s)).collect();
        let doc = docs.document("game", false, &[], &remotes);
        let echo = &doc["remotes"]["game.svc.echo"];
        assert_eq!(echo["input"]["*test.TestRequest"]["msg"], "string");
        assert_eq!(echo["output"][0]["*test.TestResponse"]["code"], "int32");
    }

    #[test]
    fn descriptors_by_message_or_file_name() {
        let files = Docs::new().files;
        let out = descriptors_for(&files, &["protos.ProtoNames".into()]).unwrap();
        assert_eq!(out.desc.len(), 1);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(out.desc[0].as_slice()),
            &mut raw,
        )
        .unwrap();
        let file = FileDescriptorProto::decode(raw.as_slice()).unwrap();
        assert_eq!(file.name(), "protos/docs.proto");
        assert!(descriptors_for(&files, &["protos/docs.proto".into()]).is_ok());
        let err = descriptors_for(&files, &["nope.Nope".into()]).unwrap_err();
        assert_eq!(err.code(), "PIT-404");
    }

    #[test]
    fn json_descriptors_are_base64() {
        let d = ProtoDescriptors { desc: vec![vec![1, 2, 3]] };
        let s = serde_json::to_string(&d).unwrap();
        assert_eq!(s, r#"{"desc":["AQID"]}"#);
        assert_eq!(serde_json::from_str::<ProtoDescriptors>(&s).unwrap(), d);
    }
}
