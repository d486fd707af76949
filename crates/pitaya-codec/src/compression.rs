//! zlib (RFC 1950) deflate and capped inflate (spec §2.4).
//!
//! Pitaya calls its data-compression bit "gzip", but the format is zlib. Only handshake
//! responses read by clients may also be gzip, which [`inflate_auto`] accepts.

use std::io::{Read, Write};

use std::cell::RefCell;

use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::ZlibEncoder;
use flate2::{Compress, Compression, FlushCompress, Status};

/// zlib's own default level (6), which Go's `compress/zlib` uses.
pub const ZLIB_DEFAULT_LEVEL: u32 = 6;

/// Compresses `data` as a zlib stream at zlib's default level (6), like Go's
/// `compress/zlib`.
///
/// The output bytes differ from Go's (spec §14): compare round trips, not bytes.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    deflate_level(data, ZLIB_DEFAULT_LEVEL)
}

/// Compresses `data` as a zlib stream at `level` (0 stores, 1 is the fastest, 9 the
/// smallest; above 9 counts as 9). Any level is valid on the wire: inflating does not
/// depend on it (spec §2.4).
///
/// Each thread keeps one compressor and resets it between calls: setting a zlib stream up
/// (its window and hash tables) costs far more than compressing a small message. A call
/// with another level than the previous one on the same thread sets a new one up.
pub fn deflate_level(data: &[u8], level: u32) -> Vec<u8> {
    let level = level.min(9);
    DEFLATER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.as_ref().is_none_or(|(at, _)| *at != level) {
                *slot = Some((level, Compress::new(Compression::new(level), true)));
            }
            let Some((_, compressor)) = slot.as_mut() else { return deflate_fresh(data, level) };
            compressor.reset();
            deflate_with(compressor, data).unwrap_or_else(|| deflate_fresh(data, level))
        }
        // Not reachable (nothing here calls back into deflate), but a fresh stream is
        // always correct.
        Err(_) => deflate_fresh(data, level),
    })
}

thread_local! {
    /// The thread's compressor and its level.
    static DEFLATER: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
}

/// Runs a whole stream through `compressor`; `None` if zlib reports an error.
fn deflate_with(compressor: &mut Compress, data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(compressor.total_in()).ok()?;
        let input = data.get(consumed..)?;
        match compressor.compress_vec(input, &mut out, FlushCompress::Finish).ok()? {
            Status::StreamEnd => return Some(out),
            Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
        }
    }
}

fn deflate_fresh(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder =
        ZlibEncoder::new(Vec::with_capacity(data.len() / 2 + 16), Compression::new(level));
    #[expect(clippy::expect_used, reason = "writing into a Vec never fails")]
    encoder.write_all(data).and_then(|()| encoder.finish()).expect("zlib into a Vec")
}

/// Inflates a zlib stream into at most `limit` bytes.
///
/// # Errors
/// [`CompressionError::Corrupt`] for a malformed stream or bad checksum, and
/// [`CompressionError::TooLarge`] as soon as the output would exceed `limit`: the buffer
/// never grows past `limit + 1` bytes, so a zip bomb costs nothing.
pub fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    read_capped(ZlibDecoder::new(data), limit)
}

/// Inflates a zlib or gzip stream, chosen by its magic bytes, into at most `limit` bytes.
///
/// # Errors
/// As [`inflate`]; data that is neither zlib nor gzip is [`CompressionError::Corrupt`].
pub fn inflate_auto(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    match data {
        [0x1F, 0x8B, ..] => read_capped(GzDecoder::new(data), limit),
        _ => inflate(data, limit),
    }
}

/// Whether `data` starts like a zlib (`78 01`, `78 5E`, `78 9C`, `78 DA`) or gzip
/// (`1F 8B`) stream and is long enough to be one (spec §1.4). Clients use this to detect a
/// compressed handshake response, which carries no flag.
pub fn looks_compressed(data: &[u8]) -> bool {
    data.len() > 2 && matches!(data, [0x78, 0x01 | 0x5E | 0x9C | 0xDA, ..] | [0x1F, 0x8B, ..])
}

fn read_capped(reader: impl Read, limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut out).map_err(|e| CompressionError::Corrupt(e.to_string()))?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge { limit });
    }
    Ok(out)
}

/// Why compressed data could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// Not a valid stream: bad header, bad data or bad checksum.
    #[error("corrupt compressed data: {0}")]
    Corrupt(String),
    /// The inflated data would be larger than allowed.
    #[error("inflated data exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let text = b"blablablablablablablablablablablablabla";
        let packed = deflate(text);
        assert!(packed.len() < text.len());
        assert!(looks_compressed(&packed));
        assert_eq!(inflate(&packed, 1024).unwrap(), text);
        assert_eq!(inflate_auto(&packed, 1024).unwrap(), text);
    }

    #[test]
    fn the_reused_compressor_matches_a_fresh_stream() {
        for text in [&b""[..], b"a", &b"hello world ".repeat(500), b"{\"code\":200}"] {
            assert_eq!(deflate(text), deflate_fresh(text, ZLIB_DEFAULT_LEVEL));
            assert_eq!(inflate(&deflate(text), 1 << 20).unwrap(), text);
        }
    }

    #[test]
    fn every_level_round_trips_and_switching_levels_resets_the_stream() {
        let text = br#"{"text":"player joined the room score level gold attack guild"}"#.repeat(40);
        let mut sizes = Vec::new();
        // Twice over, so that each level follows another one on this thread's compressor.
        for level in (0..=10).chain(0..=10) {
            let packed = deflate_level(&text, level);
            // Against a new stream fed the same way (`deflate_fresh` feeds it in two calls,
            // after which level 1's output differs in its block layout: valid all the same).
            let mut fresh = Compress::new(Compression::new(level.min(9)), true);
            assert_eq!(Some(&packed), deflate_with(&mut fresh, &text).as_ref(), "level {level}");
            assert!(looks_compressed(&packed), "level {level}");
            assert_eq!(inflate(&packed, 1 << 20).unwrap(), text, "level {level}");
            // Level 0 stores; every other level shrinks this text.
            assert_eq!(packed.len() > text.len(), level == 0, "level {level}");
            sizes.push(packed.len());
        }
        // The second pass, on reused compressors, gives the sizes of the first.
        assert_eq!(sizes[..11], sizes[11..]);
    }

    #[test]
    fn gzip_is_accepted_by_auto_only() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(b"{\"code\":200}").unwrap();
        let gz = gz.finish().unwrap();
        assert!(looks_compressed(&gz));
        assert_eq!(inflate_auto(&gz, 100).unwrap(), b"{\"code\":200}");
        assert!(matches!(inflate(&gz, 100), Err(CompressionError::Corrupt(_))));
    }

    #[test]
    fn output_is_capped() {
        let bomb = deflate(&vec![0u8; 1 << 20]);
        assert_eq!(inflate(&bomb, 1000), Err(CompressionError::TooLarge { limit: 1000 }));
        assert_eq!(inflate(&bomb, 1 << 20).unwrap().len(), 1 << 20);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(inflate(b"\x78\x9cnot zlib", 100), Err(CompressionError::Corrupt(_))));
        assert!(matches!(inflate(b"", 100), Err(CompressionError::Corrupt(_))));
        // A valid stream cut short.
        let packed = deflate(b"hello hello hello");
        assert!(inflate(&packed[..packed.len() - 3], 100).is_err());
    }

    #[test]
    fn magic_detection() {
        assert!(!looks_compressed(b"{\"code\":200}"));
        assert!(!looks_compressed(&[0x78, 0x9C]));
        assert!(looks_compressed(&[0x78, 0xDA, 0]));
    }
}
