//! Routes: `serverType.service.method` or `service.method` (spec §3.1).

use std::fmt;
use std::str::FromStr;

/// A parsed route. Once built it is valid: two or three non-blank parts.
///
/// Parsing follows Go Pitaya exactly: the string is split on `.` with no lowercasing and no
/// trimming (routes are case-sensitive), a part that is blank after trimming is rejected, and
/// only 2 or 3 parts are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    server_type: String,
    service: String,
    method: String,
}

impl Route {
    /// Parses a route string.
    ///
    /// # Errors
    /// [`RouteError::EmptyField`] (`"route field can not be empty"`) when any part is blank,
    /// checked first as Go does; otherwise [`RouteError::Invalid`] (`"invalid route"`) when
    /// the string does not have 2 or 3 parts.
    pub fn parse(route: &str) -> Result<Self, RouteError> {
        if route.split('.').any(|part| part.trim().is_empty()) {
            return Err(RouteError::EmptyField);
        }
        let mut parts = route.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c), None) => Ok(Self::new(a, b, c)),
            (Some(a), Some(b), None, None) => Ok(Self::new("", a, b)),
            _ => Err(RouteError::Invalid),
        }
    }

    /// Builds a route from its parts; `server_type` may be empty (meaning "this server").
    pub fn new(
        server_type: impl Into<String>,
        service: impl Into<String>,
        method: impl Into<String>,
    ) -> Self {
        Self { server_type: server_type.into(), service: service.into(), method: method.into() }
    }

    /// The server type, empty for a 2-part route.
    pub fn server_type(&self) -> &str {
        &self.server_type
    }

    /// The service (component) name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The method name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// `service.method`, the key of handler and remote tables.
    pub fn short(&self) -> String {
        format!("{}.{}", self.service, self.method)
    }

    /// The same route with another server type.
    pub fn with_server_type(mut self, server_type: impl Into<String>) -> Self {
        self.server_type = server_type.into();
        self
    }
}

impl fmt::Display for Route {
    /// `svType.service.method`, or `service.method` when the server type is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.server_type.is_empty() {
            write!(f, "{}.{}", self.service, self.method)
        } else {
            write!(f, "{}.{}.{}", self.server_type, self.service, self.method)
        }
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

        let r = Route::parse("room.join").unwrap();
        assert_eq!((r.server_type(), r.service(), r.method()), ("", "room", "join"));
        assert_eq!(r.to_string(), "room.join");
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
