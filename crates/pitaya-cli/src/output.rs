//! [`Out`]: where results go (stdout and stderr, or the line editor's printer under a
//! prompt), and how replies, pushes and errors are written.

use std::io::Write;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use pitaya_client::ErrorPayload;
use rustyline::ExternalPrinter;
use serde_json::Value;

use crate::gate::{Gate, Via};

/// How long [`Out::flush`] waits for the printer.
const FLUSH_LIMIT: Duration = Duration::from_millis(250);

/// What [`Out`] writes to, chosen at start-up.
enum Sink {
    /// Results to stdout, errors to stderr.
    Std,
    /// Lines for the thread that owns the line editor's printer.
    Prompt(mpsc::Sender<Line>),
}

enum Line {
    Text(String),
    /// Answered once every line before it is printed.
    Flush(mpsc::SyncSender<()>),
}

/// A shared writer for results and errors. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Out {
    sink: Arc<Sink>,
    pretty: bool,
}

impl Out {
    /// Results to stdout, errors to stderr.
    pub(crate) fn std(pretty: bool) -> Self {
        Self { sink: Arc::new(Sink::Std), pretty }
    }

    /// Everything for a terminal under a prompt, in order: a line that arrives while the
    /// user types (a push) goes through the line editor's `printer` and is shown above
    /// the prompt, which is redrawn with the partly typed line; between prompts lines go
    /// straight to stdout. `gate` says which, and holds lines back while the editor
    /// starts or ends a line, so that none lands on a prompt or a submitted line.
    ///
    /// The printer runs on its own thread because rustyline's `print` blocks while the
    /// editor has a line pending and is not reading (a completion list is open), which
    /// must not stall the runtime.
    pub(crate) fn prompt(
        pretty: bool,
        mut printer: impl ExternalPrinter + Send + 'static,
        gate: Arc<Gate>,
    ) -> Self {
        let (lines, queue) = mpsc::channel();
        std::thread::spawn(move || {
            for line in queue {
                match line {
                    Line::Text(text) => gate.print(|via| match via {
                        // A closed terminal leaves nothing to report to.
                        Via::Terminal => {
                            let mut stdout = std::io::stdout().lock();
                            let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
                        }
                        // The printer only fails when the terminal is gone: nothing to tell.
                        Via::Editor => drop(printer.print(text)),
                    }),
                    Line::Flush(done) => drop(done.send(())),
                }
            }
        });
        Self { sink: Arc::new(Sink::Prompt(lines)), pretty }
    }

    /// Writes a result line.
    pub(crate) fn line(&self, text: impl AsRef<str>) {
        self.write(text.as_ref(), false);
    }

    /// Writes an error line (stderr in file mode).
    pub(crate) fn error(&self, text: impl AsRef<str>) {
        self.write(&format!("error: {}", text.as_ref()), true);
    }

    /// Returns once every line written so far is out, or after [`FLUSH_LIMIT`].
    ///
    /// The limit guards against a printer blocked on a line that the editor took while
    /// it was about to return: that line waits for the next prompt.
    pub(crate) fn flush(&self) {
        let Sink::Prompt(lines) = &*self.sink else { return };
        let (done, flushed) = mpsc::sync_channel(1);
        if lines.send(Line::Flush(done)).is_ok() {
            // An error means the printer thread is gone, and with it anything to wait for.
            let _ = flushed.recv_timeout(FLUSH_LIMIT);
        }
    }

    fn write(&self, text: &str, error: bool) {
        match &*self.sink {
            // A closed stdout or stderr leaves nothing to report to.
            Sink::Std if error => drop(writeln!(std::io::stderr().lock(), "{text}")),
            Sink::Std => drop(writeln!(std::io::stdout().lock(), "{text}")),
            // Outside a prompt the printer writes the text as it is: the newline is ours.
            Sink::Prompt(lines) => drop(lines.send(Line::Text(format!("{text}\n")))),
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
