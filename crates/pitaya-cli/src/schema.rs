//! [`Schema`]: protobuf descriptors and which message each route and push carries, to
//! write requests as JSON, send them as protobuf and show protobuf replies as JSON.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use prost_types::{FileDescriptorProto, FileDescriptorSet};

/// Protobuf messages of a route: request and reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RouteTypes {
    pub(crate) input: Option<String>,
    pub(crate) output: Option<String>,
}

/// Descriptors plus the route → message maps.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    pool: DescriptorPool,
    routes: HashMap<String, RouteTypes>,
    pushes: HashMap<String, String>,
}

impl Schema {
    /// Compiles `.proto` files with protox (`includes` defaults to each file's folder).
    pub(crate) fn add_proto_files(
        &mut self,
        files: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<()> {
        let mut dirs: Vec<&Path> = includes.iter().map(AsRef::as_ref).collect();
        if dirs.is_empty() {
            dirs.extend(files.iter().filter_map(|f| f.as_ref().parent()));
        }
        let set = protox::compile(files, dirs).map_err(|e| anyhow!("{e}"))?;
        self.add_files(set.file)
    }

    /// Loads an encoded `FileDescriptorSet` (`protoc --descriptor_set_out`).
    pub(crate) fn add_descriptor_set(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let set = FileDescriptorSet::decode(bytes.as_slice())
            .with_context(|| format!("{} is not a file descriptor set", path.display()))?;
        self.add_files(set.file)
    }

    /// Adds file descriptors in any order; files already known are skipped.
    pub(crate) fn add_files(&mut self, files: Vec<FileDescriptorProto>) -> Result<()> {
        let new: Vec<_> =
            files.into_iter().filter(|f| self.pool.get_file_by_name(f.name()).is_none()).collect();
        if new.is_empty() {
            return Ok(());
        }
        self.pool.add_file_descriptor_protos(new).map_err(|e| anyhow!("bad descriptors: {e}"))
    }

    /// Files named as imports by `files` that the pool lacks.
    pub(crate) fn missing_imports(&self, files: &[FileDescriptorProto]) -> Vec<String> {
        let mut missing: Vec<String> = files
            .iter()
            .flat_map(|f| f.dependency.iter())
            .filter(|d| {
                self.pool.get_file_by_name(d).is_none() && !files.iter().any(|f| f.name() == *d)
            })
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// Sets the messages of `route`.
    pub(crate) fn set_route(&mut self, route: &str, types: RouteTypes) {
        self.routes.insert(route.to_owned(), types);
    }

    /// Sets the message of pushes on `route`.
    pub(crate) fn set_push(&mut self, route: &str, message: &str) {
        self.pushes.insert(route.to_owned(), message.to_owned());
    }

    /// The messages of `route`: as given, else matching without the server type on
    /// either side (`room.join` finds `connector.room.join` and the reverse).
    pub(crate) fn route(&self, route: &str) -> Option<&RouteTypes> {
        let short = |r: &'_ str| -> Option<String> {
            (r.matches('.').count() == 2)
                .then(|| r.split_once('.').map(|(_, s)| s.to_owned()))
                .flatten()
        };
        self.routes.get(route).or_else(|| {
            let want = short(route).unwrap_or_else(|| route.to_owned());
            self.routes
                .iter()
                .find(|(k, _)| short(k).as_deref() == Some(want.as_str()) || k.as_str() == want)
                .map(|(_, t)| t)
        })
    }

    fn message(&self, name: &str) -> Result<MessageDescriptor> {
        self.pool
            .get_message_by_name(name.trim_start_matches('.'))
            .ok_or_else(|| anyhow!("no descriptor for protobuf message {name}"))
    }

    /// Checks that `name` is a known message.
    pub(crate) fn check(&self, name: &str) -> Result<()> {
        self.message(name).map(|_| ())
    }

    /// The request body for `route`: protobuf when the route has an input message
    /// (from JSON `data`, empty meaning the default message), else `data` as is.
    pub(crate) fn encode_request(&self, route: &str, data: &str) -> Result<Vec<u8>> {
        let Some(name) = self.route(route).and_then(|t| t.input.as_deref()) else {
            return Ok(data.as_bytes().to_vec());
        };
        let desc = self.message(name)?;
        let data = if data.trim().is_empty() { "{}" } else { data };
        let mut de = serde_json::Deserializer::from_str(data);
        let msg = DynamicMessage::deserialize(desc, &mut de)
            .with_context(|| format!("{data} is not a valid {name} in JSON"))?;
        de.end().with_context(|| format!("trailing characters after the {name}"))?;
        Ok(msg.encode_to_vec())
    }

    /// The reply of `route` as JSON, when the route has an output message.
    pub(crate) fn decode_reply(
        &self,
        route: &str,
        body: &[u8],
    ) -> Option<Result<serde_json::Value>> {
        let name = self.route(route)?.output.as_deref()?;
        Some(self.decode(name, body))
    }

    /// A push on `route` as JSON, when `push ROUTE TYPE` named its message.
    pub(crate) fn decode_push(
        &self,
        route: &str,
        body: &[u8],
    ) -> Option<Result<serde_json::Value>> {
        let name = self.pushes.get(route)?;
        Some(self.decode(name, body))
    }

    fn decode(&self, name: &str, body: &[u8]) -> Result<serde_json::Value> {
        let msg = DynamicMessage::decode(self.message(name)?, body)
            .with_context(|| format!("reply is not a valid {name}"))?;
        serde_json::to_value(&msg).context("cannot show the message as json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.proto");
        std::fs::write(
            &path,
            "syntax = \"proto3\"; package t; message Req { string name = 1; repeated int32 n = 2; } message Rep { int32 code = 1; }",
        )
        .unwrap();
        let mut s = Schema::default();
        s.add_proto_files(&[&path], &[dir.path()]).unwrap();
        s.set_route(
            "svc.room.join",
            RouteTypes { input: Some("t.Req".into()), output: Some("t.Rep".into()) },
        );
        s
    }

    #[test]
    fn json_to_protobuf_and_back() {
        let s = schema();
        let body = s.encode_request("room.join", r#"{"name":"ana","n":[1,2]}"#).unwrap();
        assert_eq!(body, b"\x0a\x03ana\x12\x02\x01\x02");
        assert_eq!(s.encode_request("svc.room.join", "").unwrap(), b"");
        assert!(s.encode_request("room.join", r#"{"nope":1}"#).is_err());
        // A route without types is sent as typed.
        assert_eq!(s.encode_request("room.other", "raw").unwrap(), b"raw");
        let json = s.decode_reply("room.join", b"\x08\xc8\x01").unwrap().unwrap();
        assert_eq!(json, serde_json::json!({"code": 200}));
        assert!(s.decode_reply("room.other", b"").is_none());
    }
}
