//! Unsigned LEB128 varints used for message ids (spec §2.2).

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended while the continuation bit was still set.
    Truncated,
    /// The value does not fit in 64 bits.
    Overflow,
}

/// Reads a varint from the start of `buf`, returning the value and the bytes consumed.
///
/// Unlike Go Pitaya, which silently wraps ids past 64 bits, an overlong encoding is an
/// error: a 10th byte may only carry the single top bit of a u64.
pub(crate) fn read(buf: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate() {
        let shift = 7 * i as u32;
        let bits = u64::from(byte & 0x7F);
        if shift >= 64 || (shift == 63 && bits > 1) {
            return Err(VarintError::Overflow);
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(VarintError::Truncated)
}

/// Appends the varint encoding of `value` (1 to 10 bytes) to `dst`.
pub(crate) fn write(mut value: u64, dst: &mut impl bytes::BufMut) {
    while value >= 0x80 {
        dst.put_u8((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    dst.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write(v, &mut out);
        out
    }

    #[test]
    fn spec_examples() {
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(129), [0x81, 0x01]);
        assert_eq!(enc(300), [0xAC, 0x02]);
        assert_eq!(read(&[0xAC, 0x02, 0xFF]), Ok((300, 2)));
    }

    #[test]
    fn full_u64_range_round_trips() {
        for v in [0, 127, 128, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let bytes = enc(v);
            assert_eq!(read(&bytes), Ok((v, bytes.len())), "value {v}");
        }
        assert_eq!(enc(u64::MAX).len(), 10);
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        // u64::MAX with the last byte carrying one bit too many.
        let mut bytes = enc(u64::MAX);
        *bytes.last_mut().unwrap() = 0x02;
        assert_eq!(read(&bytes), Err(VarintError::Overflow));
        // An 11-byte encoding is always an overflow.
        assert_eq!(read(&[0x80; 11]), Err(VarintError::Overflow));
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert_eq!(read(&[]), Err(VarintError::Truncated));
        assert_eq!(read(&[0x80, 0x80]), Err(VarintError::Truncated));
    }
}
