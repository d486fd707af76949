//! Text exposition format 0.0.4 helpers: Go's float formatting and escaping.

/// Formats like Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which Prometheus' `expfmt`
/// uses for sample values: shortest round-trip digits, exponent form (`1.5e+06`) when the
/// decimal exponent is below -4 or at least 6.
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".to_owned() } else { "-Inf".to_owned() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".to_owned() } else { "0".to_owned() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.5e6" or "1e-7".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Go: with shortest precision, the exponent form is used when exp < -4 || exp >= 6.
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at_checked(1).unwrap_or((digits.as_str(), ""));
        let dot = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}e{esign}{:02}", exp.abs());
    }
    // Plain form: Rust's Display prints the same shortest digits without an exponent.
    format!("{v}")
}

/// Escapes a `# HELP` text: backslash and line feed.
pub(crate) fn escape_help(s: &str) -> String {
    s.replace('\\', r"\\").replace('\n', r"\n")
}

/// Escapes a label value: backslash, double quote and line feed.
pub(crate) fn escape_label(s: &str) -> String {
    s.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_go_formats_them() {
        for (v, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (1500.0, "1500"),
            (0.7, "0.7"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1_500_000.0, "1.5e+06"),
            (123_456.0, "123456"),
            (1_234_567.0, "1.234567e+06"),
            (100_000_000.0, "1e+08"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(go_float(v), want, "{v}");
        }
    }
}
