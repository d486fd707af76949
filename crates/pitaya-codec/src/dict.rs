//! The route dictionary: route strings compressed to u16 codes (spec §3.2).

use std::collections::{BTreeMap, HashMap};

/// A two-way map between routes and u16 codes.
///
/// Built once before the server starts and then shared read-only (Go keeps it in a global;
/// we hand it to each [`MessageCodec`](crate::MessageCodec) instead). Keys are trimmed of
/// surrounding whitespace, and neither a route nor a code may appear twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteDict {
    codes_by_route: HashMap<String, u16>,
    routes_by_code: HashMap<u16, String>,
}

impl RouteDict {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one entry.
    ///
    /// # Errors
    /// [`DictError::Duplicate`] when the trimmed route or the code is already present; the
    /// dictionary is then unchanged.
    pub fn insert(&mut self, route: &str, code: u16) -> Result<(), DictError> {
        let route = route.trim();
        if self.codes_by_route.contains_key(route) || self.routes_by_code.contains_key(&code) {
            return Err(DictError::Duplicate { route: route.to_owned(), code });
        }
        self.codes_by_route.insert(route.to_owned(), code);
        self.routes_by_code.insert(code, route.to_owned());
        Ok(())
    }

    /// Builds a dictionary from `(route, code)` pairs.
    ///
    /// # Errors
    /// The first [`DictError::Duplicate`] met.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a str, u16)>,
    ) -> Result<Self, DictError> {
        let mut dict = Self::new();
        for (route, code) in entries {
            dict.insert(route, code)?;
        }
        Ok(dict)
    }

    /// The code of `route`, if it has one.
    pub fn code(&self, route: &str) -> Option<u16> {
        self.codes_by_route.get(route).copied()
    }

    /// The route of `code`, if it has one.
    pub fn route(&self, code: u16) -> Option<&str> {
        self.routes_by_code.get(&code).map(String::as_str)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.codes_by_route.len()
    }

    /// Whether the dictionary has no entries.
    pub fn is_empty(&self) -> bool {
        self.codes_by_route.is_empty()
    }

    /// The entries sorted by route, as sent in the handshake's `sys.dict`.
    pub fn to_sorted_map(&self) -> BTreeMap<String, u16> {
        self.codes_by_route.iter().map(|(r, c)| (r.clone(), *c)).collect()
    }
}

/// Why an entry could not be added to a [`RouteDict`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DictError {
    /// The route or the code is already in the dictionary. The text matches Go Pitaya's.
    #[error("duplicated route(route: {route}, code: {code})")]
    Duplicate {
        /// The trimmed route being added.
        route: String,
        /// The code being added.
        code: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions() {
        let dict = RouteDict::from_entries([("a", 1), (" connector.getsessiondata ", 2)]).unwrap();
        assert_eq!(dict.code("a"), Some(1));
        assert_eq!(dict.route(2), Some("connector.getsessiondata"));
        assert_eq!(dict.code("connector.getsessiondata"), Some(2));
        assert_eq!(dict.route(3), None);
        assert_eq!(dict.len(), 2);
    }

    #[test]
    fn duplicates_are_rejected_with_gos_text() {
        let mut dict = RouteDict::from_entries([("a", 1)]).unwrap();
        let err = dict.insert("a", 2).unwrap_err();
        assert_eq!(err.to_string(), "duplicated route(route: a, code: 2)");
        let err = dict.insert("b", 1).unwrap_err();
        assert_eq!(err.to_string(), "duplicated route(route: b, code: 1)");
        assert_eq!(dict, RouteDict::from_entries([("a", 1)]).unwrap());
    }
}
