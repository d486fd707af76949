//! libFuzzer target for `pitaya_codec::fuzz::message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pitaya_codec::fuzz::message(data));
