//! The workspace's layer table, written once, and the check that every crate depends only
//! on crates of lower layers (normal dependencies; tests and benches may reach higher).
//!
//! The workspace members in the root `Cargo.toml` are listed in this order, and each
//! crate's description and crate-level doc name its layer.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One layer: its crates, and why they sit there.
pub(crate) struct Layer {
    pub(crate) name: &'static str,
    pub(crate) reason: &'static str,
    pub(crate) crates: &'static [&'static str],
    /// Crates of lower layers this layer must still not depend on.
    pub(crate) never: &'static [&'static str],
    /// Whether crates of this layer may depend on each other (only where nothing
    /// depends on them).
    pub(crate) siblings: bool,
}

/// Bottom up. A crate may depend on crates of strictly lower layers only, so crates of one
/// layer never depend on each other (the transports are siblings, not a stack); only the
/// workspace-only layer at the top, which nothing depends on, may.
pub(crate) const LAYERS: &[Layer] = &[
    Layer {
        name: "foundation",
        reason: "wire codec, protobuf messages, configuration model, test services: no \
                 workspace dependency, each usable alone",
        crates: &["pitaya-codec", "pitaya-protos", "pitaya-config", "pitaya-test-services"],
        never: &[],
        siblings: false,
    },
    Layer {
        name: "serialization",
        reason: "the client serializers over the protobuf messages, sans-IO",
        crates: &["pitaya-serialize"],
        never: &[],
        siblings: false,
    },
    Layer {
        name: "core",
        reason: "the error and context types every higher layer shares",
        crates: &["pitaya-core"],
        never: &[],
        siblings: false,
    },
    Layer {
        name: "services",
        reason: "one concern each on the core types: sessions, groups, metrics, trace \
                 export, acceptors, the client; no server logic",
        crates: &[
            "pitaya-session",
            "pitaya-groups",
            "pitaya-metrics",
            "pitaya-otel",
            "pitaya-acceptor",
            "pitaya-client",
        ],
        never: &[],
        siblings: false,
    },
    Layer {
        name: "contracts",
        reason: "what servers are made of: handlers and pipelines, the cluster traits, the \
                 per-connection agent",
        crates: &["pitaya-handler", "pitaya-cluster", "pitaya-agent"],
        never: &[],
        siblings: false,
    },
    Layer {
        name: "implementations",
        reason: "one implementation of a lower contract each (module lifecycle, etcd, \
                 NATS, gRPC, Redis worker), swappable without touching the others",
        crates: &["pitaya-modules", "pitaya-etcd", "pitaya-nats", "pitaya-grpc", "pitaya-worker"],
        never: &[],
        siblings: false,
    },
    Layer {
        name: "cluster runtime",
        reason: "forwarding, remotes, backend sessions, push/kick by uid over the cluster \
                 traits; never a concrete transport",
        crates: &["pitaya-cluster-runtime"],
        never: &["pitaya-etcd", "pitaya-nats", "pitaya-grpc", "pitaya-agent", "pitaya-acceptor"],
        siblings: false,
    },
    Layer {
        name: "server runtime",
        reason: "builder, app lifecycle, dispatch, metrics wiring; the one place that names \
                 the concrete transports",
        crates: &["pitaya-server"],
        never: &[],
        siblings: false,
    },
    Layer {
        name: "facade",
        reason: "re-exports and feature flags for users, no logic",
        crates: &["pitaya"],
        never: &[],
        siblings: false,
    },
    Layer {
        name: "bindings and tools",
        reason: "programs and foreign-language bindings (the FFI crate goes here) built on \
                 the runtime crates or the client, never on the facade",
        crates: &["pitaya-cli", "pitaya-bot", "pitaya-ffi"],
        never: &["pitaya"],
        siblings: false,
    },
    Layer {
        name: "workspace only",
        reason: "examples, integration tests and automation, free to use everything",
        crates: &["pitaya-examples", "pitaya-cluster-examples", "pitaya-tests", "xtask"],
        never: &[],
        siblings: true,
    },
];

/// Fails when a workspace crate is missing from [`LAYERS`] or has a normal dependency on
/// a crate of a higher layer, of its own layer (unless the layer allows siblings), or on
/// one its layer forbids.
pub(crate) fn check() -> Result<()> {
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, layer)| layer.crates.iter().map(move |c| (*c, i)))
        .collect();
    let graph = workspace_graph()?;
    let mut errors = Vec::new();
    for (krate, deps) in &graph {
        let Some(&own) = layer_of.get(krate.as_str()) else {
            errors.push(format!("{krate} is in no layer: add it to xtask/src/layers.rs"));
            continue;
        };
        let layer = &LAYERS[own];
        for dep in deps {
            let Some(&theirs) = layer_of.get(dep.as_str()) else { continue };
            if theirs > own || (theirs == own && !layer.siblings) {
                errors.push(format!(
                    "{krate} ({}) depends on {dep} ({}): a crate may only depend on lower layers",
                    layer.name, LAYERS[theirs].name
                ));
            } else if layer.never.contains(&dep.as_str()) {
                errors.push(format!(
                    "{krate} ({}) depends on {dep}, which its layer must not use: {}",
                    layer.name, layer.reason
                ));
            }
        }
    }
    if !errors.is_empty() {
        bail!("layering:\n  {}", errors.join("\n  "));
    }
    Ok(())
}

/// Each workspace crate with the workspace crates it depends on (normal dependencies,
/// optional ones included, whatever the features).
fn workspace_graph() -> Result<BTreeMap<String, Vec<String>>> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let packages = meta["packages"].as_array().context("cargo metadata: no packages")?;
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut graph = BTreeMap::new();
    for p in packages {
        let name = p["name"].as_str().context("cargo metadata: a package without a name")?;
        let deps = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|d| names.contains(d))
            .map(str::to_owned)
            .collect();
        graph.insert(name.to_owned(), deps);
    }
    Ok(graph)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crate_is_in_one_layer_and_every_layer_says_why() {
        let mut seen = std::collections::BTreeSet::new();
        for layer in LAYERS {
            assert!(!layer.reason.is_empty() && !layer.crates.is_empty(), "{}", layer.name);
            for c in layer.crates {
                assert!(seen.insert(*c), "{c} is in two layers");
            }
        }
    }

    #[test]
    fn only_the_top_layer_allows_siblings() {
        let open: Vec<&str> = LAYERS.iter().filter(|l| l.siblings).map(|l| l.name).collect();
        assert_eq!(open, ["workspace only"]);
        assert_eq!(LAYERS.last().map(|l| l.name), Some("workspace only"));
    }

    #[test]
    fn the_workspace_follows_the_table() {
        check().unwrap();
    }
}
