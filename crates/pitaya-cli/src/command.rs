//! [`Command`]: one line of input, parsed. Pure, so it is tested without a server.

/// Everything the shell understands (the commands of Go's `pitaya-cli`, plus `types`,
/// `docs` and `routes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// `connect ADDR`: `host:port` (TCP), `tls://`, `ws://`, `wss://`.
    Connect(String),
    /// `disconnect`.
    Disconnect,
    /// `resume`: drop the connection and resume the session on a new one.
    Resume,
    /// `request ROUTE [DATA]`: DATA is the rest of the line, usually JSON.
    Request { route: String, data: String },
    /// `notify ROUTE [DATA]`.
    Notify { route: String, data: String },
    /// `push ROUTE TYPE`: decode pushes on ROUTE as protobuf message TYPE.
    Push { route: String, message: String },
    /// `types ROUTE INPUT [OUTPUT]`: protobuf messages of a route (`-` for none).
    Types { route: String, input: Option<String>, output: Option<String> },
    /// `waitpush ROUTE [SECONDS]`: wait until one more push on ROUTE has been shown
    /// (for scripts; default 5 s).
    WaitPush { route: String, timeout: std::time::Duration },
    /// `sethandshake KEY VALUE` or `sethandshake {JSON}`.
    SetHandshake(String),
    /// `docs`: print the routes learned from the docs route.
    Docs,
    /// `history`.
    History,
    /// `help`.
    Help,
    /// `quit` or `exit`.
    Quit,
    /// A blank line or a `#` comment.
    Nothing,
}

/// Command names, for completion and help.
pub(crate) const NAMES: [&str; 14] = [
    "connect",
    "disconnect",
    "resume",
    "request",
    "notify",
    "push",
    "types",
    "waitpush",
    "sethandshake",
    "docs",
    "history",
    "help",
    "quit",
    "exit",
];

/// The help text.
pub(crate) const HELP: &str = "\
commands:
  connect ADDR             connect: host:port (tcp), tls://host:port, ws://host:port/path, wss://...
  disconnect               close the connection
  resume                   drop the connection and resume the session on a new one (prints
                           resumed or fresh session; needs a server with resume enabled)
  request ROUTE [JSON]     send a request and print its reply
  notify ROUTE [JSON]      send a notify (no reply)
  push ROUTE TYPE          decode pushes on ROUTE as protobuf message TYPE
  types ROUTE IN [OUT]     protobuf messages of ROUTE's request and reply ('-' for none)
  waitpush ROUTE [SECS]    wait for the next push on ROUTE (scripts; default 5 s)
  sethandshake KEY VALUE   handshake data: platform, libVersion, clientVersion, clientBuildNumber,
                           user.KEY; or sethandshake {JSON} for the whole handshake
  docs                     list the routes learned from the docs route
  history                  commands typed so far
  quit                     leave";

impl Command {
    /// Parses one line.
    ///
    /// # Errors
    /// A usage message for an unknown command or missing arguments.
    pub(crate) fn parse(line: &str) -> Result<Self, String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(Self::Nothing);
        }
        let (name, rest) = split_word(line);
        let (first, after_first) = split_word(rest);
        let need = |usage: &str| -> Result<(), String> {
            if first.is_empty() { Err(format!("usage: {usage}")) } else { Ok(()) }
        };
        match name {
            "connect" => {
                need("connect ADDR")?;
                Ok(Self::Connect(first.to_owned()))
            }
            "disconnect" => Ok(Self::Disconnect),
            "resume" if first.is_empty() => Ok(Self::Resume),
            "resume" => Err("usage: resume (no arguments)".into()),
            "request" => {
                need("request ROUTE [DATA]")?;
                Ok(Self::Request { route: first.to_owned(), data: after_first.to_owned() })
            }
            "notify" => {
                need("notify ROUTE [DATA]")?;
                Ok(Self::Notify { route: first.to_owned(), data: after_first.to_owned() })
            }
            "push" => {
                let (message, extra) = split_word(after_first);
                if first.is_empty() || message.is_empty() || !extra.is_empty() {
                    return Err("usage: push ROUTE TYPE".into());
                }
                Ok(Self::Push { route: first.to_owned(), message: message.to_owned() })
            }
            "types" => {
                let (input, rest) = split_word(after_first);
                let (output, extra) = split_word(rest);
                if first.is_empty() || input.is_empty() || !extra.is_empty() {
                    return Err("usage: types ROUTE INPUT [OUTPUT]".into());
                }
                let opt = |s: &str| (!s.is_empty() && s != "-").then(|| s.to_owned());
                Ok(Self::Types { route: first.to_owned(), input: opt(input), output: opt(output) })
            }
            "waitpush" => {
                need("waitpush ROUTE [SECONDS]")?;
                let secs = match after_first {
                    "" => 5.0,
                    s => s
                        .parse::<f64>()
                        .ok()
                        .filter(|s| (0.0..=3600.0).contains(s))
                        .ok_or("usage: waitpush ROUTE [SECONDS]")?,
                };
                Ok(Self::WaitPush {
                    route: first.to_owned(),
                    timeout: std::time::Duration::from_secs_f64(secs),
                })
            }
            "sethandshake" => {
                need("sethandshake KEY VALUE | sethandshake {JSON}")?;
                Ok(Self::SetHandshake(rest.to_owned()))
            }
            "docs" | "routes" => Ok(Self::Docs),
            "history" => Ok(Self::History),
            "help" => Ok(Self::Help),
            "quit" | "exit" => Ok(Self::Quit),
            other => Err(format!("unknown command {other:?}; type help")),
        }
    }
}

/// The first word and the trimmed rest.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_with_json_data() {
        assert_eq!(
            Command::parse(r#"request room.echojson {"a": 1, "b": "x y"}"#),
            Ok(Command::Request {
                route: "room.echojson".into(),
                data: r#"{"a": 1, "b": "x y"}"#.into()
            })
        );
        assert_eq!(
            Command::parse("notify room.notify"),
            Ok(Command::Notify { route: "room.notify".into(), data: String::new() })
        );
        assert_eq!(
            Command::parse("  connect ws://h:1/x "),
            Ok(Command::Connect("ws://h:1/x".into()))
        );
        assert_eq!(Command::parse("# comment"), Ok(Command::Nothing));
        assert_eq!(Command::parse("exit"), Ok(Command::Quit));
        assert_eq!(Command::parse(" resume "), Ok(Command::Resume));
        assert_eq!(
            Command::parse("types room.join - echo.Code"),
            Ok(Command::Types {
                route: "room.join".into(),
                input: None,
                output: Some("echo.Code".into())
            })
        );
    }

    #[test]
    fn rejects_bad_usage() {
        for bad in
            ["connect", "request", "push onX", "push a b c", "types r", "frobnicate x", "resume x"]
        {
            assert!(Command::parse(bad).is_err(), "{bad}");
        }
    }
}
