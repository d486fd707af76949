//! Criterion wall-clock benches of the message codec: encode, decode and the full packet
//! round trip, for 64-byte and 64 KiB payloads, with and without the route dictionary and
//! zlib data compression. The cases are defined in `common/mod.rs`, shared with the
//! callgrind driver `instructions.rs`; ids read `op/size/config`.
//!
//! Run with `cargo bench -p pitaya-codec` (or `cargo xtask bench`). Measurement times are
//! short because CI machines have two cores: the whole run takes about a minute.

mod common;

use std::time::Duration;

use common::{Fixture, Size};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench_codec(c: &mut Criterion) {
    let cases = common::cases();
    for chunk in cases.chunk_by(|a, b| (a.op, a.size) == (b.op, b.size)) {
        let Some(first) = chunk.first() else { continue };
        let mut group = c.benchmark_group(format!("{}/{}", first.op, first.size));
        // Payload bytes rather than wire bytes, so that compressed and uncompressed cases
        // report the same unit: application data handled per second.
        group.throughput(Throughput::Bytes(first.size.payload_len() as u64));
        if first.size == Size::Large {
            // A 64 KiB deflate takes about a millisecond: fewer, longer samples keep the
            // group inside its time budget.
            group.sample_size(20);
        }
        for &case in chunk {
            let mut fixture = Fixture::new(case);
            fixture.check();
            group.bench_function(case.config.to_string(), |b| b.iter(|| fixture.run(case.op)));
        }
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_codec
}
criterion_main!(benches);
