//! [`Out`]: where results go (stdout and stderr, or the terminal under a prompt), and
//! how replies, pushes and errors are written.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use pitaya_client::ErrorPayload;
use serde_json::Value;

enum Sink {
    Std,
    Term,
}

/// A shared writer for results and errors. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Out {
    sink: Arc<Mutex<Sink>>,
    pretty: bool,
}

impl Out {
    /// Results to stdout, errors to stderr.
    pub(crate) fn std(pretty: bool) -> Self {
        Self { sink: Arc::new(Mutex::new(Sink::Std)), pretty }
    }

    /// Everything to stdout, for a terminal that may be in raw mode under a prompt (a
    /// push arriving while the user types): each line clears the prompt line first and
    /// ends with CR LF. rustyline's external printer would redraw the prompt instead, but
    /// in rustyline 17 it stalls typed-ahead input until the next key press.
    pub(crate) fn term(pretty: bool) -> Self {
        Self { sink: Arc::new(Mutex::new(Sink::Term)), pretty }
    }

    /// Writes a result line.
    pub(crate) fn line(&self, text: impl AsRef<str>) {
        self.write(text.as_ref(), false);
    }

    /// Writes an error line (stderr in file mode).
    pub(crate) fn error(&self, text: impl AsRef<str>) {
        self.write(&format!("error: {}", text.as_ref()), true);
    }

    fn write(&self, text: &str, error: bool) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *sink {
            // A closed stdout or stderr leaves nothing to report to.
            Sink::Std if error => drop(writeln!(std::io::stderr().lock(), "{text}")),
            Sink::Std => drop(writeln!(std::io::stdout().lock(), "{text}")),
            Sink::Term => {
                let text = text.replace('\n', "\r\n");
                let mut stdout = std::io::stdout().lock();
                drop(write!(stdout, "\r\x1b[2K{text}\r\n").and_then(|()| stdout.flush()));
            }
        }
    }

    /// A reply or push body: decoded JSON when given, else the body reformatted when it
    /// is JSON, else as text (or hex when it is not UTF-8).
    pub(crate) fn body(&self, body: &[u8], decoded: Option<Value>) -> String {
        let value = decoded.or_else(|| serde_json::from_slice::<Value>(body).ok());
        match value {
            Some(v) if self.pretty => serde_json::to_string_pretty(&v).unwrap_or_default(),
            Some(v) => v.to_string(),
            None => match std::str::from_utf8(body) {
                Ok(text) => text.to_owned(),
                Err(_) => {
                    format!("0x{}", body.iter().map(|b| format!("{b:02x}")).collect::<String>())
                }
            },
        }
    }

    /// An error response: code, message and metadata.
    pub(crate) fn server_error(&self, e: &ErrorPayload) -> String {
        let mut text = format!("error {}: {}", e.code, e.msg);
        if !e.metadata.is_empty() {
            let meta = serde_json::to_value(&e.metadata).unwrap_or_default();
            text.push_str(&format!(" metadata {}", meta));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_show_code_message_and_metadata() {
        let out = Out::std(false);
        let mut e = ErrorPayload {
            code: "PIT-404".into(),
            msg: "route not found".into(),
            ..Default::default()
        };
        assert_eq!(out.server_error(&e), "error PIT-404: route not found");
        e.metadata.insert("route".into(), "svc.x".into());
        assert_eq!(
            out.server_error(&e),
            r#"error PIT-404: route not found metadata {"route":"svc.x"}"#
        );
    }

    #[test]
    fn bodies_as_json_text_or_hex() {
        let out = Out::std(false);
        assert_eq!(out.body(br#"{ "a" : 1 }"#, None), r#"{"a":1}"#);
        assert_eq!(out.body(b"plain", None), "plain");
        assert_eq!(out.body(b"\x08\xc8\x01", None), "0x08c801");
        assert_eq!(Out::std(true).body(b"[1]", None), "[\n  1\n]");
    }
}
