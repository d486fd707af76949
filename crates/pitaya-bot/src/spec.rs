//! [`Spec`]: a scenario file, parsed from YAML or JSON and checked before any bot runs.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::duration::{opt_serde, parse_duration};
use crate::path::FieldPath;
use crate::template::{Payload, Template, ValueTemplate};

/// Variables every bot has without storing them.
pub const BUILTIN_VARS: [&str; 2] = ["bot_id", "iteration"];

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The text is not valid JSON, or does not have the spec's shape.
    #[error("bad json spec: {0}")]
    Json(#[from] serde_json::Error),
    /// The text is not valid YAML, or does not have the spec's shape.
    #[error("bad yaml spec: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// The shape is right but a value is not (an unknown variable, a step with two
    /// actions, a bad duration...).
    #[error("{at}: {reason}")]
    Invalid {
        /// Where: `steps[2]`, `bots`...
        at: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a bot does after a step fails (an unexpected error reply, a failed assertion, a
/// missing push).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Skip the rest of this iteration and start the next one (default).
    #[default]
    NextIteration,
    /// Go on with the next step.
    Continue,
    /// Disconnect this bot; the others go on.
    Stop,
}

/// A checked scenario. Fields are public so that command-line flags can override them.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Free-form name, copied into the report.
    pub name: Option<String>,
    /// Server address (`tcp://h:p`, `h:p`, `tls://`, `ws://h:p/path`, `wss://`), unless
    /// given on the command line.
    pub address: Option<String>,
    /// Bots run in parallel, one connection and one task each. At least 1.
    pub bots: usize,
    /// Bot `i` of `n` starts `ramp_up * i / n` after the run starts.
    pub ramp_up: Duration,
    /// Loop iterations per bot. With `duration` too, whichever ends first; with neither, 1.
    pub iterations: Option<u64>,
    /// Wall-clock limit for the loop, from the start of the run.
    pub duration: Option<Duration>,
    /// Default wait for a reply (and for room in the send queue).
    pub request_timeout: Duration,
    /// Bound on TCP connect, TLS, WebSocket upgrade and handshake.
    pub connect_timeout: Duration,
    /// What a bot does after a failed step.
    pub on_failure: OnFailure,
    /// Constants every bot starts with (after the built-ins `bot_id`, `iteration`).
    pub vars: BTreeMap<String, Value>,
    /// The handshake's `user` object, rendered per bot.
    pub handshake_user: Option<ValueTemplate>,
    /// Steps run once per bot after connecting; a failure here stops the bot.
    pub setup: Vec<Step>,
    /// Steps run every iteration.
    pub steps: Vec<Step>,
    /// Steps run once per bot after the loop (also after a failure), before closing.
    pub teardown: Vec<Step>,
    /// Bots ask for session resume (`docs/resume.md`): `resume: true`, or implied by a
    /// `drop` step. Then a bot checks, before closing, that no response came twice.
    pub resume: bool,
}

/// One action of a scenario.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send a request and wait for its reply.
    Request(Box<RequestStep>),
    /// Send a notify.
    Notify(NotifyStep),
    /// Wait for a push on a route.
    ExpectPush(Box<PushStep>),
    /// Sleep, reading pushes meanwhile.
    Wait(Duration),
    /// Issue requests and notifies at once (pipelined on the connection), then wait for
    /// all replies; stores and assertions are applied in order afterwards. May hold
    /// `drop` steps: each cuts the connection once the calls before it are written.
    Parallel(Vec<Step>),
    /// Cut the connection (the client resumes the session) and wait for the outcome.
    Drop(DropStep),
}

/// A `drop` step: cut the bot's connection as a broken network would, then wait for the
/// client to come back (`docs/resume.md`).
#[derive(Debug, Clone)]
pub struct DropStep {
    /// Where the step is in the spec.
    pub label: String,
    /// The outcome that counts as success.
    pub expect: DropOutcome,
    /// How long to wait for the outcome. Default 10 s.
    pub within: Duration,
}

/// What a `drop` step expects of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropOutcome {
    /// `drop: resumed` (also `drop: true`): the session continues; a fresh session fails
    /// the step.
    Resumed,
    /// `drop: fresh`: the server starts a fresh session (e.g. it has resume disabled
    /// for this token, or the ttl is over).
    Fresh,
    /// `drop: any`: either.
    Any,
}

/// A `request` step.
#[derive(Debug, Clone)]
pub struct RequestStep {
    /// Where the step is in the spec, for reports: `steps[1] request room.echo`.
    pub label: String,
    /// The route, possibly with placeholders.
    pub route: Template,
    /// The body.
    pub data: Payload,
    /// Overrides [`Spec::request_timeout`].
    pub timeout: Option<Duration>,
    /// The reply must be an error with this code (e.g. `PIT-404`); then it counts as a
    /// success and assertions run on the error payload (`code`, `msg`, `metadata`).
    pub expect_error: Option<String>,
    /// Checks on the reply.
    pub checks: Reply,
}

/// A `notify` step.
#[derive(Debug, Clone)]
pub struct NotifyStep {
    /// Where the step is in the spec.
    pub label: String,
    /// The route, possibly with placeholders.
    pub route: Template,
    /// The body.
    pub data: Payload,
}

/// An `expect_push` step.
#[derive(Debug, Clone)]
pub struct PushStep {
    /// Where the step is in the spec.
    pub label: String,
    /// The push route, possibly with placeholders.
    pub route: Template,
    /// How long to wait for it. A push that arrived since the previous step counts.
    pub within: Duration,
    /// Checks on the push data.
    pub checks: Reply,
}

/// What to do with a reply or push body: values to store, then assertions.
///
/// The body is read as JSON; a body that is not JSON but is UTF-8 reads as one string.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// `variable <- value at path`; a missing path fails the step.
    pub store: Vec<(String, FieldPath)>,
    /// Assertions, all evaluated.
    pub asserts: Vec<Assertion>,
}

/// One assertion on a body.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// What is checked.
    pub path: FieldPath,
    /// How.
    pub check: Check,
}

/// The test an [`Assertion`] applies.
#[derive(Debug, Clone)]
pub enum Check {
    /// The value equals this one (JSON equality; a lone `${var}` keeps its type).
    Equals(ValueTemplate),
    /// The value is present (`true`) or absent (`false`).
    Exists(bool),
}

impl Spec {
    /// Reads a spec file: JSON when the name ends in `.json`, YAML otherwise.
    ///
    /// # Errors
    /// [`SpecError`].
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Io { path: path.display().to_string(), source })?;
        let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json { Self::from_json(&text) } else { Self::from_yaml(&text) }
    }

    /// Parses a YAML spec.
    ///
    /// # Errors
    /// [`SpecError`].
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        Self::from_raw(serde_norway::from_str(text)?)
    }

    /// Parses a JSON spec.
    ///
    /// # Errors
    /// [`SpecError`].
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        Self::from_raw(serde_json::from_str(text)?)
    }

    /// Every step of the spec in order (setup, loop, teardown; parallel ones flattened).
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        fn flatten(step: &Step) -> Box<dyn Iterator<Item = &Step> + '_> {
            match step {
                Step::Parallel(inner) => Box::new(inner.iter().flat_map(flatten)),
                other => Box::new(std::iter::once(other)),
            }
        }
        self.setup.iter().chain(&self.steps).chain(&self.teardown).flat_map(flatten)
    }

    /// Adds or replaces a constant variable (`--var name=value`).
    ///
    /// # Errors
    /// [`SpecError::Invalid`] when `name` is a built-in.
    pub fn set_var(&mut self, name: &str, value: Value) -> Result<(), SpecError> {
        if BUILTIN_VARS.contains(&name) {
            return Err(invalid("vars", format!("{name} is a built-in variable")));
        }
        self.vars.insert(name.to_owned(), value);
        Ok(())
    }

    fn from_raw(raw: RawSpec) -> Result<Self, SpecError> {
        if raw.bots == Some(0) {
            return Err(invalid("bots", "at least one bot is needed"));
        }
        if raw.steps.is_empty() && raw.setup.is_empty() {
            return Err(invalid("steps", "the spec has no step"));
        }
        for name in raw.vars.keys() {
            if BUILTIN_VARS.contains(&name.as_str()) {
                return Err(invalid("vars", format!("{name} is a built-in variable")));
            }
        }
        let mut known: HashSet<String> = BUILTIN_VARS.iter().map(|s| (*s).to_owned()).collect();
        known.extend(raw.vars.keys().cloned());
        let handshake_user = match &raw.handshake_user {
            Some(user @ Value::Object(_)) => {
                let t = ValueTemplate::compile(user).map_err(|e| invalid("handshake_user", e))?;
                check_known(&known, t.var_names(), "handshake_user")?;
                Some(t)
            }
            Some(_) => return Err(invalid("handshake_user", "must be an object")),
            None => None,
        };
        let mut section = |name: &str, raw_steps: Vec<RawStep>| {
            raw_steps
                .into_iter()
                .enumerate()
                .map(|(i, s)| s.compile(&format!("{name}[{i}]"), &mut known, false))
                .collect::<Result<Vec<_>, _>>()
        };
        let setup = section("setup", raw.setup)?;
        let steps = section("steps", raw.steps)?;
        let teardown = section("teardown", raw.teardown)?;
        let mut spec = Self {
            name: raw.name,
            address: raw.address,
            bots: raw.bots.unwrap_or(1),
            ramp_up: raw.ramp_up.unwrap_or(Duration::ZERO),
            iterations: raw.iterations,
            duration: raw.duration,
            request_timeout: raw.request_timeout.unwrap_or(Duration::from_secs(5)),
            connect_timeout: raw.connect_timeout.unwrap_or(Duration::from_secs(5)),
            on_failure: raw.on_failure.unwrap_or_default(),
            vars: raw.vars,
            handshake_user,
            setup,
            steps,
            teardown,
            resume: raw.resume.unwrap_or(false),
        };
        let drops = spec.all_steps().any(|s| matches!(s, Step::Drop(_)));
        if drops && raw.resume == Some(false) {
            return Err(invalid("resume", "a drop step needs resume"));
        }
        spec.resume |= drops;
        Ok(spec)
    }
}

fn invalid(at: &str, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid { at: at.to_owned(), reason: reason.into() }
}

fn check_known<'a>(
    known: &HashSet<String>,
    names: impl IntoIterator<Item = &'a str>,
    at: &str,
) -> Result<(), SpecError> {
    for name in names {
        if !known.contains(name) {
            return Err(invalid(
                at,
                format!(
                    "variable ${{{name}}} is neither a built-in, in `vars`, nor stored by an earlier step"
                ),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Option<String>,
    address: Option<String>,
    bots: Option<usize>,
    #[serde(default, with = "opt_serde")]
    ramp_up: Option<Duration>,
    iterations: Option<u64>,
    #[serde(default, with = "opt_serde")]
    duration: Option<Duration>,
    #[serde(default, with = "opt_serde")]
    request_timeout: Option<Duration>,
    #[serde(default, with = "opt_serde")]
    connect_timeout: Option<Duration>,
    on_failure: Option<OnFailure>,
    #[serde(default)]
    vars: BTreeMap<String, Value>,
    handshake_user: Option<Value>,
    resume: Option<bool>,
    #[serde(default)]
    setup: Vec<RawStep>,
    #[serde(default)]
    steps: Vec<RawStep>,
    #[serde(default)]
    teardown: Vec<RawStep>,
}

/// A step as written: one action key plus the options that go with it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    request: Option<String>,
    notify: Option<String>,
    expect_push: Option<String>,
    wait: Option<String>,
    parallel: Option<Vec<RawStep>>,
    drop: Option<Value>,
    data: Option<Value>,
    timeout: Option<String>,
    within: Option<String>,
    expect_error: Option<String>,
    #[serde(default)]
    store: BTreeMap<String, String>,
    #[serde(default)]
    assert: Vec<RawAssertion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssertion {
    #[serde(default)]
    path: String,
    equals: Option<Value>,
    exists: Option<bool>,
}

impl RawStep {
    fn compile(
        self,
        at: &str,
        known: &mut HashSet<String>,
        in_parallel: bool,
    ) -> Result<Step, SpecError> {
        let actions = [
            self.request.is_some(),
            self.notify.is_some(),
            self.expect_push.is_some(),
            self.wait.is_some(),
            self.parallel.is_some(),
            self.drop.is_some(),
        ];
        if actions.iter().filter(|a| **a).count() != 1 {
            return Err(invalid(
                at,
                "a step has exactly one of request, notify, expect_push, wait, parallel, drop",
            ));
        }
        let duration = |field: &str, text: &Option<String>| {
            text.as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| invalid(&format!("{at}.{field}"), e))
        };
        let route = |text: &str| {
            let t = Template::parse(text).map_err(|e| invalid(at, e))?;
            check_known(known, t.var_names(), at)?;
            Ok::<_, SpecError>(t)
        };
        let payload = |data: &Option<Value>| {
            let p =
                Payload::compile(data.as_ref()).map_err(|e| invalid(&format!("{at}.data"), e))?;
            check_known(known, p.var_names(), &format!("{at}.data"))?;
            Ok::<_, SpecError>(p)
        };
        let allowed = |fields: &[(&str, bool)]| {
            for (name, present) in fields {
                if *present {
                    return Err(invalid(at, format!("`{name}` does not apply to this step")));
                }
            }
            Ok(())
        };
        let has_checks = !self.store.is_empty() || !self.assert.is_empty();

        if let Some(text) = &self.request {
            allowed(&[("within", self.within.is_some())])?;
            let label = format!("{at} request {text}");
            let step = RequestStep {
                route: route(text)?,
                data: payload(&self.data)?,
                timeout: duration("timeout", &self.timeout)?,
                expect_error: self.expect_error,
                checks: compile_reply(self.store, self.assert, at, known)?,
                label,
            };
            return Ok(Step::Request(Box::new(step)));
        }
        allowed(&[
            ("expect_error", self.expect_error.is_some()),
            ("timeout", self.timeout.is_some()),
        ])?;
        if let Some(text) = &self.notify {
            allowed(&[("within", self.within.is_some()), ("store/assert", has_checks)])?;
            let step = NotifyStep {
                label: format!("{at} notify {text}"),
                route: route(text)?,
                data: payload(&self.data)?,
            };
            return Ok(Step::Notify(step));
        }
        if let Some(value) = &self.drop {
            allowed(&[("data", self.data.is_some()), ("store/assert", has_checks)])?;
            let expect = match value {
                Value::Bool(true) => DropOutcome::Resumed,
                Value::String(s) if s == "resumed" => DropOutcome::Resumed,
                Value::String(s) if s == "fresh" => DropOutcome::Fresh,
                Value::String(s) if s == "any" => DropOutcome::Any,
                _ => return Err(invalid(at, "drop is one of resumed, fresh, any")),
            };
            let within = duration("within", &self.within)?.unwrap_or(Duration::from_secs(10));
            let label = format!("{at} drop");
            return Ok(Step::Drop(DropStep { label, expect, within }));
        }
        if in_parallel {
            return Err(invalid(at, "only request, notify and drop steps can run in parallel"));
        }
        allowed(&[("data", self.data.is_some())])?;
        if let Some(text) = &self.expect_push {
            let within = duration("within", &self.within)?.unwrap_or(Duration::from_secs(5));
            let step = PushStep {
                label: format!("{at} expect_push {text}"),
                route: route(text)?,
                within,
                checks: compile_reply(self.store, self.assert, at, known)?,
            };
            return Ok(Step::ExpectPush(Box::new(step)));
        }
        allowed(&[("within", self.within.is_some()), ("store/assert", has_checks)])?;
        if let Some(text) = &self.wait {
            return duration("wait", &Some(text.clone()))
                .map(|d| Step::Wait(d.unwrap_or_default()));
        }
        let inner = self.parallel.unwrap_or_default();
        if inner.is_empty() {
            return Err(invalid(at, "parallel needs at least one step"));
        }
        // Stores inside a parallel block become visible after it, not to its siblings:
        // they are all rendered before the first one is sent.
        let mut inner_known = known.clone();
        let steps = inner
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let mut view = known.clone();
                let step = s.compile(&format!("{at}.parallel[{i}]"), &mut view, true);
                inner_known.extend(view);
                step
            })
            .collect::<Result<Vec<_>, _>>()?;
        *known = inner_known;
        Ok(Step::Parallel(steps))
    }
}

fn compile_reply(
    store: BTreeMap<String, String>,
    asserts: Vec<RawAssertion>,
    at: &str,
    known: &mut HashSet<String>,
) -> Result<Reply, SpecError> {
    let mut reply = Reply::default();
    let mut stored = Vec::new();
    for (name, path) in store {
        if BUILTIN_VARS.contains(&name.as_str()) {
            return Err(invalid(at, format!("cannot store into built-in variable {name}")));
        }
        let path = FieldPath::parse(&path).map_err(|e| invalid(&format!("{at}.store"), e))?;
        stored.push(name.clone());
        reply.store.push((name, path));
    }
    // Assertions run after the stores, so they may use what this very step stored.
    known.extend(stored);
    for (i, a) in asserts.into_iter().enumerate() {
        let where_ = format!("{at}.assert[{i}]");
        let path = FieldPath::parse(&a.path).map_err(|e| invalid(&where_, e))?;
        let check = match (a.equals, a.exists) {
            (Some(value), None) => {
                let t = ValueTemplate::compile(&value).map_err(|e| invalid(&where_, e))?;
                check_known(known, t.var_names(), &where_)?;
                Check::Equals(t)
            }
            (None, Some(exists)) => Check::Exists(exists),
            _ => return Err(invalid(&where_, "an assertion has exactly one of equals, exists")),
        };
        reply.asserts.push(Assertion { path, check });
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
bots: 2
iterations: 3
ramp_up: 100ms
vars: { greeting: hello }
setup:
  - request: room.join
steps:
  - request: room.echojson
    data: { n: "${bot_id}", g: "${greeting}" }
    store: { n: n }
    assert:
      - { path: n, equals: "${n}" }
      - { path: /g, exists: true }
  - notify: room.notify
    data: "hi ${n}"
  - expect_push: onNotify
    within: 1s
  - wait: 5ms
  - request: room.fail
    expect_error: PIT-499
  - parallel:
      - request: room.echo
        data: "a"
      - request: room.echo
        data: "b"
"#;

    #[test]
    fn yaml_and_json_agree() {
        let yaml = Spec::from_yaml(YAML).unwrap();
        let value: Value = serde_norway::from_str(YAML).unwrap();
        let json = Spec::from_json(&value.to_string()).unwrap();
        for spec in [yaml, json] {
            assert_eq!((spec.bots, spec.iterations), (2, Some(3)));
            assert_eq!(spec.ramp_up, Duration::from_millis(100));
            assert_eq!(spec.steps.len(), 6);
            assert_eq!(spec.all_steps().count(), 8);
            assert!(
                matches!(&spec.steps[4], Step::Request(r) if r.expect_error.as_deref() == Some("PIT-499"))
            );
        }
    }

    fn reason(yaml: &str) -> String {
        match Spec::from_yaml(yaml) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {yaml}"),
        }
    }

    #[test]
    fn mistakes_are_reported_with_their_place() {
        assert!(reason("steps: [{request: a, notify: b}]").contains("exactly one"));
        assert!(reason("steps: [{request: a, data: \"${x}\"}]").contains("steps[0].data"));
        assert!(reason("steps: [{request: a, bogus: 1}]").contains("bogus"));
        assert!(reason("steps: [{wait: 5}]").contains("needs a unit"));
        assert!(reason("steps: [{notify: a, store: {x: y}}]").contains("does not apply"));
        assert!(reason("bots: 0\nsteps: [{wait: 1s}]").contains("at least one bot"));
        assert!(reason("steps: [{parallel: [{wait: 1s}]}]").contains("in parallel"));
        // A variable is only known after the step that stores it.
        let later = "steps: [{request: a, data: \"${v}\"}, {request: b, store: {v: x}}]";
        assert!(reason(later).contains("${v}"));
        assert!(reason("vars: {bot_id: 1}\nsteps: [{wait: 1s}]").contains("built-in"));
        assert!(reason("steps: []").contains("no step"));
        assert!(reason("steps: [{drop: later}]").contains("resumed, fresh, any"));
        assert!(reason("resume: false\nsteps: [{drop: resumed}]").contains("needs resume"));
        assert!(reason("steps: [{drop: any, data: x}]").contains("does not apply"));
    }

    #[test]
    fn drop_steps_imply_resume_and_may_run_in_parallel() {
        let spec = Spec::from_yaml(
            "steps:\n  - parallel: [{request: a}, {drop: resumed}, {notify: b}]\n  - drop: fresh\n    within: 1s\n",
        )
        .unwrap();
        assert!(spec.resume);
        assert!(
            matches!(&spec.steps[0], Step::Parallel(p) if matches!(&p[1], Step::Drop(d) if d.expect == DropOutcome::Resumed && d.within == Duration::from_secs(10)))
        );
        assert!(
            matches!(&spec.steps[1], Step::Drop(d) if d.expect == DropOutcome::Fresh && d.within == Duration::from_secs(1))
        );
        assert!(!Spec::from_yaml("steps: [{wait: 1ms}]").unwrap().resume);
        assert!(Spec::from_yaml("resume: true\nsteps: [{wait: 1ms}]").unwrap().resume);
    }

    #[test]
    fn the_crate_docs_example_is_a_valid_spec() {
        let docs = include_str!("lib.rs");
        let start = docs.find("//! ```yaml\n").expect("a yaml block") + "//! ```yaml\n".len();
        let len = docs[start..].find("//! ```\n").expect("its end");
        let yaml: String = docs[start..start + len]
            .lines()
            .map(|l| l.strip_prefix("//!").unwrap_or(l).strip_prefix(' ').unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let spec = Spec::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!((spec.bots, spec.iterations), (10, Some(100)));
        assert_eq!(spec.all_steps().count(), 11);
        assert!(spec.resume);
    }

    #[test]
    fn stored_variables_are_usable_afterwards_and_in_teardown() {
        let spec = Spec::from_yaml(
            "setup: [{request: a, store: {tok: /t}}]\nsteps: [{request: \"b.${tok}\"}]\nteardown: [{notify: c, data: {t: \"${tok}\"}}]",
        )
        .unwrap();
        assert_eq!(spec.iterations, None);
        assert_eq!(spec.on_failure, OnFailure::NextIteration);
    }
}
