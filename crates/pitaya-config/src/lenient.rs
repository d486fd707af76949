//! Weakly typed readers for strings, lists and maps, matching viper's decoding.
//!
//! Pitaya decodes with mapstructure's `WeaklyTypedInput` plus a `","` string-to-slice hook, and
//! environment variables always arrive as strings. So `pool: 10` may fill a string, and
//! `PITAYA_CLUSTER_SD_ETCD_ENDPOINTS=a:2379,b:2379` fills a list. Numbers and booleans read from
//! strings are handled by figment's lossy extraction instead (see `load`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A string field that also accepts numbers (`10` → `"10"`) and null (→ `""`).
pub(crate) fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_any(StringVisitor)
}

/// A list of strings: a sequence, or one string split on commas with items trimmed and empty
/// items dropped (`"a:2379, b:2379"` → two endpoints, `""` → none).
pub(crate) fn string_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    deserializer.deserialize_any(ListVisitor)
}

/// A string-to-string map: a map, or one string holding a JSON object
/// (`PITAYA_METRICS_CONSTLABELS='{"region":"us"}'`), as `cast.ToStringMapString` reads it.
pub(crate) fn string_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    deserializer.deserialize_any(MapVisitor)
}

/// A `u32` that also accepts its decimal string form, for Go keys typed as strings.
pub(crate) fn u32_from_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let text = string(deserializer)?;
    text.trim().parse().map_err(|_| {
        de::Error::invalid_value(de::Unexpected::Str(&text), &"a non-negative 32-bit integer")
    })
}

/// One element of a weakly typed list or map.
struct Lenient(String);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string(deserializer).map(Lenient)
    }
}

struct StringVisitor;

impl Visitor<'_> for StringVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        // Rust's shortest round-trip form matches Go's FormatFloat(v, 'f', -1, 64) for
        // the values configs hold ("0.5", "10").
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings or a comma-separated string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
        Ok(v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Lenient(item)) = seq.next_element()? {
            out.push(item);
        }
        Ok(out)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }
}

struct MapVisitor;

impl<'de> Visitor<'de> for MapVisitor {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings or a JSON object string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v.trim().is_empty() {
            return Ok(BTreeMap::new());
        }
        let object: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(v).map_err(|e| E::custom(format!("not a JSON object: {e}")))?;
        object
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                serde_json::Value::Number(n) => Ok((k, n.to_string())),
                other => Err(E::custom(format!("value of `{k}` is not a string: {other}"))),
            })
            .collect()
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((Lenient(k), Lenient(v))) = map.next_entry()? {
            out.insert(k, v);
        }
        Ok(out)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "string")]
        s: String,
        #[serde(default, deserialize_with = "string_list")]
        l: Vec<String>,
        #[serde(default, deserialize_with = "string_map")]
        m: BTreeMap<String, String>,
        #[serde(default, deserialize_with = "u32_from_string")]
        n: u32,
    }

    fn probe(json: &str) -> Probe {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn strings_accept_numbers_and_null() {
        assert_eq!(probe(r#"{"s":10}"#).s, "10");
        assert_eq!(probe(r#"{"s":-3}"#).s, "-3");
        assert_eq!(probe(r#"{"s":0.5}"#).s, "0.5");
        assert_eq!(probe(r#"{"s":null}"#).s, "");
        assert!(serde_json::from_str::<Probe>(r#"{"s":true}"#).is_err());
    }

    #[test]
    fn lists_accept_sequences_and_comma_strings() {
        assert_eq!(probe(r#"{"l":["a","b"]}"#).l, ["a", "b"]);
        assert_eq!(probe(r#"{"l":"a:2379, b:2379,"}"#).l, ["a:2379", "b:2379"]);
        assert_eq!(probe(r#"{"l":""}"#).l, Vec::<String>::new());
    }

    #[test]
    fn maps_accept_maps_and_json_strings() {
        let m = probe(r#"{"m":{"region":"us","shard":3}}"#).m;
        assert_eq!(m.get("region").map(String::as_str), Some("us"));
        assert_eq!(m.get("shard").map(String::as_str), Some("3"));
        let m = probe(r#"{"m":"{\"region\":\"eu\"}"}"#).m;
        assert_eq!(m.get("region").map(String::as_str), Some("eu"));
        assert!(serde_json::from_str::<Probe>(r#"{"m":"region=eu"}"#).is_err());
    }

    #[test]
    fn u32_accepts_number_or_string() {
        assert_eq!(probe(r#"{"n":"10"}"#).n, 10);
        assert_eq!(probe(r#"{"n":12}"#).n, 12);
        assert!(serde_json::from_str::<Probe>(r#"{"n":"ten"}"#).is_err());
    }
}
