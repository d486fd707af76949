//! `loadgen zlib-levels`: the size and CPU of each zlib level on the bench's payloads, so
//! that `cargo xtask bench` can show what the codec's default level trades.
//!
//! It deflates through `pitaya-codec`'s own [`deflate_level`] (the server's path, with its
//! reused per-thread compressor), on the same JSON-like text the request cases send.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use pitaya_codec::compression::deflate_level;
use serde_json::json;

/// What to measure.
pub(crate) struct LevelsPlan {
    pub(crate) levels: Vec<u32>,
    pub(crate) payloads: Vec<usize>,
    /// Deflates per timed batch; 0 only takes the sizes (the callgrind runs subtract such
    /// a run from one with iterations).
    pub(crate) iterations: u64,
    /// Timed batches per level and payload; the fastest is kept, since other work on the
    /// machine can only slow a batch down.
    pub(crate) batches: u32,
}

/// One JSON object per level and payload: `level`, `payload`, `bytes` (deflated size) and
/// `ns` (per deflate, fastest batch; `null` without iterations).
pub(crate) fn run(plan: &LevelsPlan) -> Result<serde_json::Value> {
    ensure!(plan.levels.iter().all(|&l| l <= 9), "zlib levels go from 0 to 9");
    let mut rows = Vec::new();
    for &payload in &plan.payloads {
        let data = crate::text_payload(payload);
        for &level in &plan.levels {
            let bytes = deflate_level(&data, level).len();
            let mut best: Option<Duration> = None;
            if plan.iterations > 0 {
                for _ in 0..plan.batches.max(1) {
                    let started = Instant::now();
                    for _ in 0..plan.iterations {
                        std::hint::black_box(deflate_level(std::hint::black_box(&data), level));
                    }
                    let took = started.elapsed();
                    best = Some(best.map_or(took, |b| b.min(took)));
                }
            }
            let ns = best.map(|b| b.as_secs_f64() * 1e9 / plan.iterations as f64);
            rows.push(json!({"level": level, "payload": payload, "bytes": bytes, "ns": ns}));
        }
    }
    Ok(json!({
        "mode": "zlib_levels",
        "default_level": pitaya_codec::message::DEFAULT_COMPRESSION_LEVEL,
        "rows": rows,
    }))
}
