//! Wall-clock formats go-workers writes: float seconds, `YYYY-MM-DD` stat days and
//! `2006-01-02 15:04:05 UTC` failure times, all in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch with nanosecond precision, as Go's
/// `float64(t.UnixNano()) / 1e9`.
pub(crate) fn now_secs() -> f64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    d.as_secs_f64()
}

/// `YYYY-MM-DD` of the UTC day containing `secs`.
pub(crate) fn day(secs: f64) -> String {
    let (y, m, d, _) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD hh:mm:ss UTC` of `secs`.
pub(crate) fn timestamp(secs: f64) -> String {
    let (y, m, d, sod) = civil(secs);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", sod / 3600, sod / 60 % 60, sod % 60)
}

/// (year, month, day, second of day) of `secs`, by the days-from-civil inverse
/// (proleptic Gregorian calendar).
fn civil(secs: f64) -> (i64, u32, u32, i64) {
    // Truncation is the point: whole seconds; the clock never gives a negative or huge value.
    #[expect(clippy::cast_possible_truncation, reason = "whole seconds of a wall clock")]
    let secs = secs.floor() as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1), sod)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(day(0.0), "1970-01-01");
        assert_eq!(timestamp(1_718_000_000.9), "2024-06-10 06:13:20 UTC");
        assert_eq!(day(951_782_400.0), "2000-02-29");
        assert_eq!(timestamp(1_374_328_999.0), "2013-07-20 14:03:19 UTC");
    }
}
