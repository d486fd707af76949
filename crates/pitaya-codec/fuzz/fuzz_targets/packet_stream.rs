//! libFuzzer target for `pitaya_codec::fuzz::packet_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pitaya_codec::fuzz::packet_stream(data));
