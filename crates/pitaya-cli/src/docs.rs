//! Fetching a server's documentation (`--docs ROUTE`): the routes with their types, then
//! the protobuf descriptors of those types from the descriptors route, found in the
//! document as Go's CLI finds it (input `protos.ProtoNames`, output
//! `protos.ProtoDescriptors`).

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result, anyhow, bail};
use pitaya_client::Client;
use prost::Message;
use prost_types::FileDescriptorProto;
use serde_json::Value;

use crate::schema::{RouteTypes, Schema};

/// Rounds of asking for imported files: bounds a server that keeps naming new ones.
const IMPORT_ROUNDS: usize = 8;

#[derive(Clone, PartialEq, prost::Message)]
struct Doc {
    #[prost(string, tag = "1")]
    doc: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoNames {
    #[prost(string, repeated, tag = "1")]
    name: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDescriptors {
    #[prost(bytes = "vec", repeated, tag = "1")]
    desc: Vec<Vec<u8>>,
}

/// One documented route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteDoc {
    /// `handler` or `remote`.
    pub(crate) section: &'static str,
    /// Input and output type names as documented (`*` marks protobuf messages).
    pub(crate) input: Option<String>,
    pub(crate) output: Option<String>,
}

/// The routes of a server, by full route.
pub(crate) type Routes = BTreeMap<String, RouteDoc>;

/// Requests `docs_route`, records the routes' protobuf types in `schema` and fetches
/// their descriptors when the server serves them. Returns the routes.
pub(crate) async fn load(client: &Client, docs_route: &str, schema: &mut Schema) -> Result<Routes> {
    let protobuf = client.handshake_response().sys.serializer == "protobuf";
    let body = client.request(docs_route, Vec::new()).await.context("docs request failed")?;
    let doc = if protobuf {
        Doc::decode(body.as_ref()).context("docs reply is not a protos.Doc")?.doc
    } else {
        let v: Value = serde_json::from_slice(&body).context("docs reply is not json")?;
        v.get("doc")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("docs reply has no doc"))?
            .to_owned()
    };
    let doc: Value = serde_json::from_str(&doc).context("the document is not json")?;
    let routes = parse(&doc);
    let mut names = Vec::new();
    let mut descriptors_route = None;
    for (route, r) in &routes {
        let star =
            |t: &Option<String>| t.as_deref().and_then(|t| t.strip_prefix('*')).map(str::to_owned);
        let types = RouteTypes { input: star(&r.input), output: star(&r.output) };
        if types.input.as_deref() == Some("protos.ProtoNames")
            && types.output.as_deref() == Some("protos.ProtoDescriptors")
            && r.section == "handler"
        {
            descriptors_route.get_or_insert_with(|| route.clone());
        }
        names.extend(types.input.iter().chain(types.output.iter()).cloned());
        if types.input.is_some() || types.output.is_some() {
            schema.set_route(route, types);
        }
    }
    names.sort();
    names.dedup();
    if let (Some(route), false) = (descriptors_route, names.is_empty()) {
        fetch_descriptors(client, &route, names, protobuf, schema).await?;
    }
    Ok(routes)
}

async fn fetch_descriptors(
    client: &Client,
    route: &str,
    mut names: Vec<String>,
    protobuf: bool,
    schema: &mut Schema,
) -> Result<()> {
    let mut files: Vec<FileDescriptorProto> = Vec::new();
    for _ in 0..IMPORT_ROUNDS {
        let body = if protobuf {
            ProtoNames { name: names.clone() }.encode_to_vec()
        } else {
            serde_json::to_vec(&serde_json::json!({ "name": names }))?
        };
        let reply = client.request(route, body).await.context("descriptors request failed")?;
        let desc = if protobuf {
            ProtoDescriptors::decode(reply.as_ref()).context("not a protos.ProtoDescriptors")?.desc
        } else {
            decode_json_descriptors(&reply)?
        };
        for gz in desc {
            let file = FileDescriptorProto::decode(gunzip(&gz)?.as_slice())
                .context("bad file descriptor")?;
            if !files.iter().any(|f| f.name == file.name) {
                files.push(file);
            }
        }
        names = schema.missing_imports(&files);
        if names.is_empty() {
            return schema.add_files(files);
        }
    }
    bail!("the server keeps naming more imported files")
}

fn decode_json_descriptors(reply: &[u8]) -> Result<Vec<Vec<u8>>> {
    use base64::Engine;
    let decode = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
    let v: Value = serde_json::from_slice(reply).context("descriptors reply is not json")?;
    v.get("desc")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("descriptors reply has no desc"))?
        .iter()
        .map(|d| d.as_str().and_then(decode).ok_or_else(|| anyhow!("bad base64 descriptor")))
        .collect()
}

fn gunzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    // Descriptors are small; the cap keeps a hostile server from filling memory.
    flate2::read::GzDecoder::new(data)
        .take(16 << 20)
        .read_to_end(&mut out)
        .context("descriptor is not gzip")?;
    Ok(out)
}

/// Routes of a Go-shaped document: `{"handlers": {route: {input, output}}, "remotes": ...}`.
pub(crate) fn parse(doc: &Value) -> Routes {
    let mut routes = Routes::new();
    for (section, key) in [("handler", "handlers"), ("remote", "remotes")] {
        let Some(map) = doc.get(key).and_then(Value::as_object) else { continue };
        for (route, entry) in map {
            let input = entry.get("input").and_then(type_key);
            let output = entry
                .get("output")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(type_key);
            routes.insert(route.clone(), RouteDoc { section, input, output });
        }
    }
    routes
}

/// The type name of `{"name": {fields}}`: the `*` key if any (Go may list several).
fn type_key(v: &Value) -> Option<String> {
    let map = v.as_object()?;
    map.keys().find(|k| k.starts_with('*')).or_else(|| map.keys().next()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_shaped_documents() {
        let doc = serde_json::json!({
            "handlers": {
                "connector.room.join": {"input": null, "output": [{"*echo.Code": {"code": "int32"}}, "error"]},
                "connector.room.notify": {"input": {"bytes::Bytes": {}}, "output": []}
            },
            "remotes": {"connector.svc.rpc": {"input": {"*t.Req": {}}, "output": [{"*t.Rep": {}}, "error"]}}
        });
        let routes = parse(&doc);
        assert_eq!(routes.len(), 3);
        assert_eq!(routes["connector.room.join"].output.as_deref(), Some("*echo.Code"));
        assert_eq!(routes["connector.room.join"].input, None);
        assert_eq!(routes["connector.room.notify"].input.as_deref(), Some("bytes::Bytes"));
        assert_eq!(routes["connector.svc.rpc"].section, "remote");
    }
}
