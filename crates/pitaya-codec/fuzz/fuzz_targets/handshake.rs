//! libFuzzer target for `pitaya_codec::fuzz::handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pitaya_codec::fuzz::handshake(data));
