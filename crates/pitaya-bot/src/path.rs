//! [`FieldPath`]: where a value sits in a reply or push, as a JSON pointer or dotted path.

use std::fmt;

use serde_json::Value;

/// A path into a JSON value.
///
/// - `""` (or `$`): the whole value;
/// - `/a/b/0`: a JSON pointer (RFC 6901, `~0` and `~1` escapes);
/// - `a.b.0`: a dotted path; a segment of digits indexes an array.
///
/// On an object, a segment of digits is a key like any other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    segments: Vec<String>,
}

impl FieldPath {
    /// Parses a path.
    ///
    /// # Errors
    /// An empty segment in a dotted path (`a..b`, `.a`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let segments = if text.is_empty() || text == "$" {
            Vec::new()
        } else if let Some(pointer) = text.strip_prefix('/') {
            pointer.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect()
        } else {
            let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
            if segments.iter().any(String::is_empty) {
                return Err(format!("empty segment in path {text:?}"));
            }
            segments
        };
        Ok(Self { text: text.to_owned(), segments })
    }

    /// The value at this path, if there is one.
    pub fn lookup<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.segments.iter().try_fold(root, |value, segment| match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() { f.write_str("$") } else { f.write_str(&self.text) }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pointer_dotted_and_whole() {
        let v = json!({"a": {"b": [10, {"c": "x"}]}, "k/e~y": 1, "0": "zero"});
        let at = |p: &str| FieldPath::parse(p).unwrap().lookup(&v).cloned();
        assert_eq!(at(""), Some(v.clone()));
        assert_eq!(at("$"), Some(v.clone()));
        assert_eq!(at("/a/b/0"), Some(json!(10)));
        assert_eq!(at("a.b.1.c"), Some(json!("x")));
        assert_eq!(at("/k~1e~0y"), Some(json!(1)));
        assert_eq!(at("0"), Some(json!("zero")));
        assert_eq!(at("a.b.2"), None);
        assert_eq!(at("a.missing"), None);
        assert_eq!(at("a.b.x"), None);
    }

    #[test]
    fn bad_dotted_paths() {
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse(".a").is_err());
    }
}
