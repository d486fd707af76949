//! Scenario-driven bots for Pitaya servers, and the project's load tool.
//!
//! **Layer:** bindings and tools (the table in `xtask/src/layers.rs`): may depend on the
//! runtime crates and anything below them, never on the facade.
//!
//! A spec (YAML or JSON) lists steps; `bots` bots run them in parallel, each over its own
//! [`pitaya_client::Client`] connection, with a ramp-up, for a number of iterations or a
//! duration. The [`Report`] counts requests per route, errors by `PIT-` code, latency
//! percentiles, pushes and assertion failures. The `pitaya-bot` binary adds a live
//! progress line, a JSON report file, a text table and an optional Pushgateway push.
//!
//! ```text
//! pitaya-bot examples/bot/echo.yaml --addr tcp://127.0.0.1:3250 --bots 10 --iterations 1000
//! ```
//!
//! # Spec format
//! ```yaml
//! name: echo                      # free text, copied into the report
//! address: tcp://127.0.0.1:3250   # or h:p, tls://, ws://h:p/path, wss://; --addr wins
//! bots: 10                        # default 1
//! ramp_up: 2s                     # bot i of n starts ramp_up*i/n after the start
//! iterations: 100                 # loop runs per bot; with `duration`, whichever ends
//! duration: 30s                   #   first; with neither, one iteration
//! request_timeout: 5s             # default 5s; per step: `timeout`
//! connect_timeout: 5s
//! on_failure: next_iteration      # or continue, stop (disconnect this bot)
//! resume: true                    # ask for session resume (implied by a drop step)
//! vars: { greeting: hello }       # constants; --var name=value overrides
//! handshake_user: { id: "${bot_id}" }   # the handshake's `user` object
//! setup:                          # once per bot after connecting; a failure stops it
//!   - request: room.join
//!     assert: [{ path: code, equals: 200 }]
//! steps:                          # every iteration
//!   - request: room.echojson
//!     data: { bot: "${bot_id}", n: "${iteration}", hi: "${greeting}" }
//!     store: { n: /n }            # variable <- JSON pointer or dotted path
//!     assert:
//!       - { path: bot, equals: "${bot_id}" }
//!       - { path: hi, exists: true }
//!   - notify: room.notify
//!     data: "ping ${n}"
//!   - expect_push: onNotify       # a push that came since the last step counts
//!     within: 1s                  # default 5s
//!     assert: [{ path: "", equals: "ping ${n}" }]
//!   - request: room.fail
//!     expect_error: PIT-499       # an error reply with this code is the success
//!     assert: [{ path: msg, equals: fail }]
//!   - wait: 10ms                  # pushes are still read meanwhile
//!   - parallel:                   # pipelined: all sent, then all replies awaited
//!       - request: room.echo
//!         data: a
//!       - request: room.echo
//!         data: b
//!       - drop: resumed           # cut once the calls above are written (see below)
//!   - drop: any                   # cut the connection: resumed, fresh or any
//!     within: 10s                 # wait this long for the outcome (default 10s)
//! teardown:                       # once per bot after the loop
//!   - notify: room.message
//!     data: bye
//! ```
//!
//! Rules:
//! - A step has exactly one action key: `request`, `notify`, `expect_push`, `wait`,
//!   `parallel` (of requests, notifies and drops), `drop`. Unknown keys are errors.
//! - `drop` (session resume, `docs/resume.md`; the server must have it enabled, e.g.
//!   `echo --resume`): cuts the bot's connection as a broken network would; the client
//!   reconnects and resumes the session. The step waits up to `within` for the outcome
//!   and fails when it is not the one named: `resumed` (or `true`), `fresh`, `any`. A
//!   server that granted no token fails the step without cutting. Inside `parallel` the
//!   cut comes once the requests and notifies listed before it are written, so they are
//!   in flight; those after it are queued while the client reconnects. Every reply must
//!   then still come, exactly once: a bot of a spec with resume fails an assertion
//!   (`responses: exactly once`) if a response found no waiting request that had not
//!   timed out. Pushes are checked by `expect_push` steps, which take the oldest unread
//!   push of their route: a push lost, doubled or out of order fails their assertions.
//! - `data`: a string is sent as its bytes (raw handlers get exactly the text); any
//!   other value is sent as compact JSON; no `data` sends an empty body.
//! - `${name}` is replaced in routes, in `data` strings and in `equals` values by a
//!   variable: the built-ins `bot_id` (0-based) and `iteration` (0-based), `vars`, or a
//!   value stored by an earlier step. A string that is exactly `${name}` takes the
//!   variable's JSON type (`"${bot_id}"` sends the number 3); inside longer text a
//!   non-string value is written as JSON. `$$` is a literal `$`. A variable used before
//!   any step stores it is a spec error; one whose store failed at run time fails the
//!   step that uses it.
//! - Bodies are read as JSON; a reply that is not JSON but is UTF-8 reads as one string
//!   (path `""`). Paths: `""` or `$` for the whole body, `/a/0/b` (JSON pointer) or
//!   `a.0.b` (dotted). With `expect_error`, the body checked is the error payload
//!   (`code`, `msg`, `metadata`).
//! - Durations need a unit: `us`, `ms`, `s`, `m`, `h`.
//! - A step fails on an unexpected error reply, no reply, a failed store or assertion,
//!   or a missing push; then `on_failure` applies. A lost connection stops the bot.
//!
//! # Figures
//! See [`Report`]. Error replies are counted by code whether expected or not; the error
//! rate counts only calls without the expected outcome. `pitaya-bot` exits with 1 when
//! an assertion failed, no bot connected, or the error rate is above `--max-error-rate`;
//! with 2 for a bad command line, spec or address; with 3 when the report could not be
//! written or pushed.
//!
//! # TLS
//! `tls://` and `wss://` addresses need [`RunOptions::tls`]: `--ca FILE` (PEM roots,
//! with `--server-name` when the certificate names a host other than the address's) or
//! `--insecure` for self-signed test servers.
//!
//! # Layout
//! - [`Spec`] (`spec.rs`): parsing and checking; [`template`] (`${var}`), [`FieldPath`]
//!   (`path.rs`), [`parse_duration`] (`duration.rs`).
//! - [`Runner`] (`runner.rs`): ramp-up, one task per bot; `bot.rs` runs the steps,
//!   `inbox.rs` keeps pushes for `expect_push`.
//! - `stats.rs` records, [`Report`] (`report.rs`; drops and resumes in [`ResumeReport`])
//!   summarizes: JSON, table, Prometheus text; `progress.rs` draws the live line.
//! - `pushgateway` (feature `pushgateway`, on by default): the POST to a Pushgateway.
//!
//! | Feature | Default | What |
//! |---|---|---|
//! | `pushgateway` | yes | `pushgateway::push`: the POST over hyper (plain `http://` only) |

mod bot;
mod duration;
mod inbox;
mod path;
mod progress;
mod report;
mod runner;
mod spec;
mod stats;
pub mod template;

#[cfg(feature = "pushgateway")]
pub mod pushgateway;

pub use duration::parse_duration;
pub use path::FieldPath;
pub use report::{FailureReport, NotifyReport, Percentiles, Report, ResumeReport, RouteReport};
pub use runner::{RunError, RunOptions, Runner, StopHandle, run};
pub use spec::{
    Assertion, BUILTIN_VARS, Check, DropOutcome, DropStep, NotifyStep, OnFailure, PushStep, Reply,
    RequestStep, Spec, SpecError, Step,
};
