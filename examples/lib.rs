//! Helpers shared by the examples in this folder.
//!
//! Each example is a file beside this one, declared as an `[[example]]` in `Cargo.toml`,
//! so `cargo run --example NAME` works from the workspace root and
//! `cargo build --release --example NAME` leaves the binary in `target/release/examples/`.

/// Formats bytes as space-separated lower-case hex, the way the protocol spec shows them.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_matches_the_spec_notation() {
        assert_eq!(super::hex(&[0x01, 0x00, 0x00, 0x41]), "01 00 00 41");
        assert_eq!(super::hex(&[]), "");
    }
}
