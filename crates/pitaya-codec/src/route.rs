//! Routes: `serverType.service.method` or `service.method` (spec §3.1).

use std::fmt;
use std::str::FromStr;

/// A parsed route. Once built it is valid: two or three non-blank parts.
///
/// Parsing follows Go Pitaya exactly: the string is split on `.` with no lowercasing and no
/// trimming (routes are case-sensitive), a part that is blank after trimming is rejected, and
/// only 2 or 3 parts are accepted.
///
/// The route is kept as one string with the part boundaries, so that the parts and the
/// `service.method` key used by handler tables are borrowed, not allocated, on the
/// dispatch path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// `serverType.service.method`, or `service.method` without a server type.
    text: String,
    /// Where `service` starts: 0 without a server type.
    service_start: usize,
    /// Where `method` starts.
    method_start: usize,
}

impl Route {
    /// Parses a route string.
    ///
    /// # Errors
    /// [`RouteError::EmptyField`] (`"route field can not be empty"`) when any part is blank,
    /// checked first as Go does; otherwise [`RouteError::Invalid`] (`"invalid route"`) when
    /// the string does not have 2 or 3 parts.
    pub fn parse(route: &str) -> Result<Self, RouteError> {
        Self::parse_owned(route.to_owned())
    }

    /// Parses a route string, reusing its allocation.
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn parse_owned(route: String) -> Result<Self, RouteError> {
        // One pass over the bytes. `split('.')` and `match_indices('.')` go through the
        // generic char searcher, which cost ~440 instructions per message for `room.echo`
        // on the echo server (callgrind), more than the rest of the codec. `.` is ASCII, so
        // every slice below starts and ends on a char boundary.
        // A part that starts with a visible ASCII character is not blank; only the others
        // go through `trim`, which is Unicode-aware and cost ~100 instructions a message.
        let blank = |part: Option<&str>| {
            part.is_none_or(|p| {
                !p.as_bytes().first().is_some_and(u8::is_ascii_graphic) && p.trim().is_empty()
            })
        };
        let mut dots = [0usize; 2];
        let mut count = 0usize;
        let mut start = 0usize;
        let mut any_blank = false;
        for (i, &byte) in route.as_bytes().iter().enumerate() {
            if byte == b'.' {
                any_blank |= blank(route.get(start..i));
                if let Some(slot) = dots.get_mut(count) {
                    *slot = i;
                }
                count += 1;
                start = i + 1;
            }
        }
        // Go checks every part for blanks before it counts them.
        if any_blank || blank(route.get(start..)) {
            return Err(RouteError::EmptyField);
        }
        match (count, dots) {
            (2, [a, b]) => Ok(Self { text: route, service_start: a + 1, method_start: b + 1 }),
            (1, [a, _]) => Ok(Self { text: route, service_start: 0, method_start: a + 1 }),
            _ => Err(RouteError::Invalid),
        }
    }

    /// Builds a route from its parts; `server_type` may be empty (meaning "this server").
    ///
    /// Parts are not checked: a part containing `.` makes a route that prints differently
    /// from its parts.
    pub fn new(server_type: &str, service: &str, method: &str) -> Self {
        let prefix = if server_type.is_empty() { 0 } else { server_type.len() + 1 };
        let mut text = String::with_capacity(prefix + service.len() + method.len() + 1);
        if !server_type.is_empty() {
            text.push_str(server_type);
            text.push('.');
        }
        text.push_str(service);
        text.push('.');
        text.push_str(method);
        Self { text, service_start: prefix, method_start: prefix + service.len() + 1 }
    }

    /// The server type, empty for a 2-part route.
    pub fn server_type(&self) -> &str {
        self.text.get(..self.service_start.saturating_sub(1)).unwrap_or_default()
    }

    /// The service (component) name.
    pub fn service(&self) -> &str {
        self.text.get(self.service_start..self.method_start - 1).unwrap_or_default()
    }

    /// The method name.
    pub fn method(&self) -> &str {
        self.text.get(self.method_start..).unwrap_or_default()
    }

    /// `service.method`, the key of handler and remote tables.
    pub fn short(&self) -> &str {
        self.text.get(self.service_start..).unwrap_or_default()
    }

    /// `svType.service.method`, or `service.method` when the server type is empty.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The same route with another server type.
    ///
    /// A route without a server type is completed in place, in its own allocation when it
    /// has room (decoded routes keep some).
    pub fn with_server_type(mut self, server_type: &str) -> Self {
        if self.server_type() == server_type {
            return self;
        }
        if self.service_start != 0 || server_type.is_empty() {
            return Self::new(server_type, self.service(), self.method());
        }
        let prefix = server_type.len() + 1;
        self.text.reserve(prefix);
        self.text.insert(0, '.');
        self.text.insert_str(0, server_type);
        self.service_start = prefix;
        self.method_start += prefix;
        self
    }
}

impl fmt::Display for Route {
    /// `svType.service.method`, or `service.method` when the server type is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Route {
    type Err = RouteError;

    fn from_str(s: &str) -> Result<Self, RouteError> {
        Self::parse(s)
    }
}

/// Why a route string was rejected. The messages are the ones Go Pitaya sends to clients
/// with `PIT-400` (spec §1.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// Not 2 or 3 parts.
    #[error("invalid route")]
    Invalid,
    /// A part is blank.
    #[error("route field can not be empty")]
    EmptyField,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_and_two_parts() {
        let r = Route::parse("connector.testsvc.getsessiondata").unwrap();
        assert_eq!(
            (r.server_type(), r.service(), r.method()),
            ("connector", "testsvc", "getsessiondata")
        );
        assert_eq!(r.to_string(), "connector.testsvc.getsessiondata");
        assert_eq!(r.short(), "testsvc.getsessiondata");
        assert_eq!(r.clone().with_server_type("game").to_string(), "game.testsvc.getsessiondata");
        assert_eq!(r.clone().with_server_type(""), Route::parse("testsvc.getsessiondata").unwrap());

        let r = Route::parse("room.join").unwrap();
        assert_eq!((r.server_type(), r.service(), r.method()), ("", "room", "join"));
        assert_eq!(r.to_string(), "room.join");
        assert_eq!(
            r.clone().with_server_type("connector"),
            Route::new("connector", "room", "join")
        );
        assert_eq!(Route::new("", "room", "join"), r);
    }

    /// Go's algorithm written the plain way (split, check blanks, count), which the
    /// one-pass parser must agree with on every input.
    fn reference(route: &str) -> Result<(String, String, String), RouteError> {
        let parts: Vec<&str> = route.split('.').collect();
        if parts.iter().any(|p| p.trim().is_empty()) {
            return Err(RouteError::EmptyField);
        }
        match parts.as_slice() {
            [t, s, m] => Ok(((*t).to_owned(), (*s).to_owned(), (*m).to_owned())),
            [s, m] => Ok((String::new(), (*s).to_owned(), (*m).to_owned())),
            _ => Err(RouteError::Invalid),
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_agrees_with_the_plain_algorithm(route in "[a. \\té\u{3000}]{0,12}") {
            let parsed = Route::parse(&route)
                .map(|r| (r.server_type().to_owned(), r.service().to_owned(), r.method().to_owned()));
            proptest::prop_assert_eq!(parsed, reference(&route));
        }
    }

    #[test]
    fn case_sensitive_and_untrimmed() {
        let r = Route::parse("Room. Join").unwrap();
        assert_eq!((r.service(), r.method()), ("Room", " Join"));
    }

    #[test]
    fn rejections_in_go_order() {
        assert_eq!(Route::parse(""), Err(RouteError::EmptyField));
        assert_eq!(Route::parse("a"), Err(RouteError::Invalid));
        assert_eq!(Route::parse("a.b.c.d"), Err(RouteError::Invalid));
        assert_eq!(Route::parse("a..c"), Err(RouteError::EmptyField));
        assert_eq!(Route::parse("a. .c"), Err(RouteError::EmptyField));
        // Blank beats count: 4 parts with a blank one is "empty field", as in Go.
        assert_eq!(Route::parse("a.b..d"), Err(RouteError::EmptyField));
        assert_eq!(RouteError::Invalid.to_string(), "invalid route");
        assert_eq!(RouteError::EmptyField.to_string(), "route field can not be empty");
    }
}
