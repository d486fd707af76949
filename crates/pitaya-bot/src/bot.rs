//! One bot: a connection and a task running the spec's steps in order.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pitaya_client::{Client, ClientError, ClientOptions, Events, ResumeEvent};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::inbox::Inbox;
use crate::spec::{
    Check, DropOutcome, DropStep, NotifyStep, OnFailure, PushStep, Reply, RequestStep, Spec, Step,
};
use crate::stats::{Outcome, Stats};
use crate::template::{MissingVar, Template, Vars};

/// What every bot of a run shares.
pub(crate) struct Env {
    pub(crate) spec: Arc<Spec>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) address: String,
    pub(crate) client: ClientOptions,
    /// No new iteration (or step) starts after this.
    pub(crate) deadline: Option<Instant>,
}

/// Why a step did not succeed; what was wrong is already recorded.
enum Failed {
    /// The step failed; the connection is still usable.
    Step,
    /// The connection has ended: the bot stops.
    Closed,
}

/// The counter name of a client error: the server's `PIT-` code, or a lower-case word
/// for what went wrong on this side.
pub(crate) fn error_code(e: &ClientError) -> &str {
    match e {
        ClientError::Server(payload) => &payload.code,
        ClientError::Timeout => "timeout",
        ClientError::Closed => "closed",
        ClientError::Connect(_) => "connect",
        ClientError::TlsConfig(_) | ClientError::Tls(_) => "tls",
        ClientError::WebSocket(_) => "websocket",
        ClientError::Handshake(_) | ClientError::HandshakeRejected { .. } => "handshake",
        ClientError::Encode(_) => "encode",
        ClientError::Protocol(_) => "protocol",
        ClientError::InvalidAddress { .. } => "address",
        ClientError::SessionLost => "session_lost",
        _ => "client",
    }
}

/// Runs bot `id` to its end: connect, setup, loop, teardown, close.
pub(crate) async fn run(id: usize, env: Arc<Env>, stop: watch::Receiver<bool>) {
    let mut vars: Vars = env.spec.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.insert("bot_id".to_owned(), Value::from(id));
    vars.insert("iteration".to_owned(), Value::from(0u64));
    let mut opts = env.client.clone();
    if let Some(user) = &env.spec.handshake_user {
        // The spec check allows only built-ins and `vars` here, which are all set.
        if let Ok(Value::Object(map)) = user.render(&vars) {
            opts.handshake.user = Some(map);
        }
    }
    let started = Instant::now();
    let (client, pushes) = match Client::connect(&env.address, opts).await {
        Ok(pair) => {
            env.stats.connect(started.elapsed(), None);
            pair
        }
        Err(e) => {
            env.stats.connect(started.elapsed(), Some((error_code(&e), format!("bot {id}: {e}"))));
            env.stats.bot_stopped_early();
            return;
        }
    };
    let inbox = Inbox::new(pushes, env.stats.clone());
    let events = client.events();
    let mut bot = Bot { env: env.clone(), client, inbox, vars, stop, events, gave_up: 0 };
    let finished = bot.run_all().await;
    if !finished {
        env.stats.bot_stopped_early();
    }
    bot.inbox.drain();
    bot.note_events();
    if env.spec.resume {
        bot.check_exactly_once();
    }
    env.stats.pushes_dropped(bot.client.dropped_pushes());
    bot.client.close().await;
}

struct Bot {
    env: Arc<Env>,
    client: Client,
    inbox: Inbox,
    vars: Vars,
    stop: watch::Receiver<bool>,
    /// The client's resume events (none without resume).
    events: Events,
    /// Requests that gave up waiting (timed out): their late answers are expected to
    /// find no waiter.
    gave_up: u64,
}

/// A request or notify ready to go, rendered before anything of a parallel block is sent;
/// or a cut, made once the `calls_before` calls listed before it are written.
enum Prepared<'s> {
    Request { step: &'s RequestStep, route: Cow<'s, str>, data: Bytes },
    Notify { route: Cow<'s, str>, data: Bytes },
    Drop { step: &'s DropStep, calls_before: u64 },
}

/// What came back for a [`Prepared`] call.
enum Sent {
    Reply(Result<Bytes, ClientError>, Duration),
    Notified(Result<(), ClientError>),
    Cut,
}

/// How long a cut inside a `parallel` block waits for the calls before it to be written.
const WRITTEN_WITHIN: Duration = Duration::from_secs(1);

impl Bot {
    /// Setup, loop and teardown; false when the bot stopped early.
    async fn run_all(&mut self) -> bool {
        let spec = self.env.spec.clone();
        for step in &spec.setup {
            if self.step(step).await.is_err() {
                return false;
            }
        }
        let mut ended_early = false;
        let mut iteration = 0u64;
        'run: loop {
            if spec.iterations.is_some_and(|n| iteration >= n) || self.should_stop() {
                break;
            }
            if spec.iterations.is_none() && spec.duration.is_none() && iteration >= 1 {
                break;
            }
            self.vars.insert("iteration".to_owned(), Value::from(iteration));
            let mut failed = false;
            for step in &spec.steps {
                if self.should_stop() {
                    // Cut by the duration limit or a stop request: not counted.
                    break 'run;
                }
                match self.step(step).await {
                    Ok(()) => {}
                    Err(Failed::Closed) => {
                        ended_early = true;
                        break 'run;
                    }
                    Err(Failed::Step) => {
                        failed = true;
                        match spec.on_failure {
                            OnFailure::Continue => {}
                            OnFailure::NextIteration => break,
                            OnFailure::Stop => {
                                self.env.stats.iteration(true);
                                ended_early = true;
                                break 'run;
                            }
                        }
                    }
                }
            }
            self.env.stats.iteration(failed);
            iteration += 1;
        }
        if self.client.is_closed() {
            return false;
        }
        for step in &spec.teardown {
            if let Err(Failed::Closed) = self.step(step).await {
                return false;
            }
        }
        !ended_early
    }

    fn should_stop(&self) -> bool {
        *self.stop.borrow() || self.env.deadline.is_some_and(|d| Instant::now() >= d)
    }

    async fn step(&mut self, step: &Step) -> Result<(), Failed> {
        let result = match step {
            Step::Request(r) => self.request(r).await,
            Step::Notify(n) => self.notify(n).await,
            Step::ExpectPush(p) => self.expect_push(p).await,
            Step::Wait(d) => self.wait(*d).await,
            Step::Parallel(steps) => self.parallel(steps).await,
            Step::Drop(d) => self.drop_connection(d).await,
        };
        self.inbox.drain();
        result
    }

    fn render<'t>(&self, label: &str, t: &'t Template) -> Result<Cow<'t, str>, Failed> {
        t.render_cow(&self.vars).map_err(|e| self.missing(label, &e))
    }

    fn missing(&self, label: &str, e: &MissingVar) -> Failed {
        self.env.stats.failure(&format!("{label}: {e}"), || e.to_string());
        Failed::Step
    }

    fn prepare<'s>(&self, step: &'s Step) -> Result<Prepared<'s>, Failed> {
        match step {
            Step::Request(r) => Ok(Prepared::Request {
                route: self.render(&r.label, &r.route)?,
                data: r.data.render(&self.vars).map_err(|e| self.missing(&r.label, &e))?,
                step: r,
            }),
            Step::Notify(n) => Ok(Prepared::Notify {
                route: self.render(&n.label, &n.route)?,
                data: n.data.render(&self.vars).map_err(|e| self.missing(&n.label, &e))?,
            }),
            // Counted by `parallel`, which knows the calls before it.
            Step::Drop(step) => Ok(Prepared::Drop { step, calls_before: 0 }),
            // The spec check allows only requests, notifies and drops in parallel blocks.
            _ => Err(Failed::Step),
        }
    }

    fn send<'a>(
        &self,
        prepared: &'a Prepared<'_>,
    ) -> Pin<Box<dyn Future<Output = Sent> + Send + 'a>> {
        let client = self.client.clone();
        match prepared {
            Prepared::Request { step, route, data } => {
                let timeout = step.timeout.unwrap_or(self.env.spec.request_timeout);
                Box::pin(async move {
                    let started = Instant::now();
                    let reply = client.request_with_timeout(route, data.clone(), timeout).await;
                    Sent::Reply(reply, started.elapsed())
                })
            }
            Prepared::Notify { route, data, .. } => {
                Box::pin(async move { Sent::Notified(client.notify(route, data.clone()).await) })
            }
            Prepared::Drop { calls_before, .. } => {
                let target = client.resume_counters().map(|(_, sent)| sent + calls_before);
                Box::pin(async move {
                    // Requests and notifies before it in the block are queued by now; wait
                    // until they are on the wire, so that the cut finds them in flight.
                    let written = async {
                        while client
                            .resume_counters()
                            .zip(target)
                            .is_some_and(|((_, sent), target)| sent < target)
                        {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    };
                    let _ = tokio::time::timeout(WRITTEN_WITHIN, written).await;
                    client.cut_connection();
                    Sent::Cut
                })
            }
        }
    }

    fn finish(&mut self, prepared: &Prepared<'_>, sent: Sent) -> Result<(), Failed> {
        match (prepared, sent) {
            (Prepared::Request { step, route, .. }, Sent::Reply(reply, latency)) => {
                self.reply(step, route, reply, latency)
            }
            // The outcome is awaited by `parallel`, after every reply.
            (Prepared::Drop { .. }, Sent::Cut) => Ok(()),
            (Prepared::Notify { route, .. }, Sent::Notified(result)) => {
                let error = result.as_ref().err().map(error_code);
                self.env.stats.notify(route, error);
                match result {
                    Ok(()) => Ok(()),
                    Err(ClientError::Closed) => Err(Failed::Closed),
                    Err(_) => Err(Failed::Step),
                }
            }
            // `send` answers each kind with its own kind.
            _ => Err(Failed::Step),
        }
    }

    async fn request(&mut self, step: &RequestStep) -> Result<(), Failed> {
        let route = self.render(&step.label, &step.route)?;
        let data = step.data.render(&self.vars).map_err(|e| self.missing(&step.label, &e))?;
        let timeout = step.timeout.unwrap_or(self.env.spec.request_timeout);
        let started = Instant::now();
        let reply = self.client.request_with_timeout(&route, data, timeout).await;
        self.reply(step, &route, reply, started.elapsed())
    }

    fn reply(
        &mut self,
        step: &RequestStep,
        route: &str,
        reply: Result<Bytes, ClientError>,
        latency: Duration,
    ) -> Result<(), Failed> {
        let stats = self.env.stats.clone();
        match (reply, step.expect_error.as_deref()) {
            (Ok(body), expected) => {
                stats.request(route, Some(latency), Outcome::Ok);
                if let Some(code) = expected {
                    let kind = format!("{}: expect_error", step.label);
                    stats.failure(&kind, || format!("expected error {code}, got a success reply"));
                    return Err(Failed::Step);
                }
                self.check_body(&step.label, &step.checks, &body)
            }
            (Err(ClientError::Server(payload)), Some(code)) if payload.code == code => {
                stats.request(route, Some(latency), Outcome::ExpectedError(code));
                let body = serde_json::to_value(&payload).unwrap_or(Value::Null);
                self.check(&step.label, &step.checks, Some(&body))
            }
            (Err(e @ ClientError::Server(_)), expected) => {
                stats.request(route, Some(latency), Outcome::Error(error_code(&e)));
                if let Some(code) = expected {
                    let kind = format!("{}: expect_error", step.label);
                    stats.failure(&kind, || format!("expected error {code}, got {e}"));
                }
                Err(Failed::Step)
            }
            (Err(e), _) => {
                stats.request(route, None, Outcome::NoReply(error_code(&e)));
                if matches!(e, ClientError::Timeout) {
                    self.gave_up += 1;
                }
                match e {
                    ClientError::Closed => Err(Failed::Closed),
                    _ => Err(Failed::Step),
                }
            }
        }
    }

    async fn notify(&mut self, step: &NotifyStep) -> Result<(), Failed> {
        let route = self.render(&step.label, &step.route)?;
        let data = step.data.render(&self.vars).map_err(|e| self.missing(&step.label, &e))?;
        let result = self.client.notify(&route, data).await;
        let error = result.as_ref().err().map(error_code);
        self.env.stats.notify(&route, error);
        match result {
            Ok(()) => Ok(()),
            Err(ClientError::Closed) => Err(Failed::Closed),
            Err(_) => Err(Failed::Step),
        }
    }

    async fn expect_push(&mut self, step: &PushStep) -> Result<(), Failed> {
        let route = self.render(&step.label, &step.route)?;
        let until = Instant::now() + step.within;
        match self.inbox.expect(&route, until).await {
            Some(push) => self.check_body(&step.label, &step.checks, &push.data),
            None => {
                let within = step.within;
                self.env.stats.failure(&format!("{}: missing", step.label), || {
                    format!("no {route} push within {within:?}")
                });
                if self.client.is_closed() { Err(Failed::Closed) } else { Err(Failed::Step) }
            }
        }
    }

    async fn wait(&mut self, d: Duration) -> Result<(), Failed> {
        let mut until = Instant::now() + d;
        if let Some(deadline) = self.env.deadline {
            until = until.min(deadline);
        }
        let mut stop = self.stop.clone();
        tokio::select! {
            open = self.inbox.collect_until(until) => {
                if !open { return Err(Failed::Closed) }
            }
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
        Ok(())
    }

    async fn parallel(&mut self, steps: &[Step]) -> Result<(), Failed> {
        let mut prepared = steps.iter().map(|s| self.prepare(s)).collect::<Result<Vec<_>, _>>()?;
        let mut calls = 0;
        for p in &mut prepared {
            match p {
                Prepared::Drop { calls_before, .. } => *calls_before = calls,
                _ => calls += 1,
            }
        }
        if prepared.iter().any(|p| matches!(p, Prepared::Drop { .. })) {
            self.note_events();
        }
        let sent = futures_util::future::join_all(prepared.iter().map(|p| self.send(p))).await;
        let mut outcome = Ok(());
        for (p, s) in prepared.iter().zip(sent) {
            let result = match p {
                Prepared::Drop { step, .. } => match self.no_token(step) {
                    Ok(()) => self.drop_outcome(step).await,
                    Err(failed) => Err(failed),
                },
                _ => self.finish(p, s),
            };
            match result {
                Ok(()) => {}
                Err(Failed::Closed) => outcome = Err(Failed::Closed),
                Err(Failed::Step) => {
                    if outcome.is_ok() {
                        outcome = Err(Failed::Step);
                    }
                }
            }
        }
        outcome
    }

    /// Cuts the connection and waits for the session to come back.
    async fn drop_connection(&mut self, step: &DropStep) -> Result<(), Failed> {
        // Events of earlier drops (a network that failed by itself) are not this one's.
        self.note_events();
        self.no_token(step)?;
        self.client.cut_connection();
        self.drop_outcome(step).await
    }

    /// Without a resume token a cut would end the bot: fail the step instead.
    fn no_token(&self, step: &DropStep) -> Result<(), Failed> {
        if self.client.resume_token().is_some() {
            return Ok(());
        }
        self.env.stats.failure(&format!("{}: no token", step.label), || {
            "the server granted no resume token (is resume enabled on the server?)".into()
        });
        Err(if self.client.is_closed() { Failed::Closed } else { Failed::Step })
    }

    /// Waits for the outcome of a cut just made and checks it against the step.
    async fn drop_outcome(&mut self, step: &DropStep) -> Result<(), Failed> {
        let stats = self.env.stats.clone();
        let until = Instant::now() + step.within;
        let outcome = loop {
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some(event)) => {
                    stats.resume_event(&event);
                    match event {
                        ResumeEvent::Resumed { .. } => break DropOutcome::Resumed,
                        ResumeEvent::FreshSession { .. } => break DropOutcome::Fresh,
                        _ => {}
                    }
                }
                Ok(None) => return Err(Failed::Closed),
                Err(_) => {
                    let within = step.within;
                    stats.failure(&format!("{}: no outcome", step.label), || {
                        format!("neither resumed nor a fresh session within {within:?}")
                    });
                    return Err(if self.client.is_closed() {
                        Failed::Closed
                    } else {
                        Failed::Step
                    });
                }
            }
        };
        if step.expect != DropOutcome::Any && step.expect != outcome {
            let expected = step.expect;
            stats.failure(&format!("{}: outcome", step.label), || {
                format!("expected {expected:?}, got {outcome:?}")
            });
            return Err(Failed::Step);
        }
        Ok(())
    }

    /// Counts the resume events received so far.
    fn note_events(&mut self) {
        while let Some(event) = self.events.try_recv() {
            self.env.stats.resume_event(&event);
        }
    }

    /// With resume, no response may arrive twice: every response without a waiter must
    /// belong to a request that gave up.
    fn check_exactly_once(&self) {
        let unmatched = self.client.unmatched_responses();
        if unmatched > self.gave_up {
            let gave_up = self.gave_up;
            self.env.stats.failure("responses: exactly once", || {
                format!(
                    "{unmatched} responses found no waiting request, only {gave_up} requests timed out: an answer arrived twice"
                )
            });
        }
    }

    /// Stores and assertions on a reply or push body; the body is parsed only when
    /// something reads it, so plain load steps cost no JSON parsing.
    fn check_body(&mut self, label: &str, checks: &Reply, body: &[u8]) -> Result<(), Failed> {
        if checks.store.is_empty() && checks.asserts.is_empty() {
            return Ok(());
        }
        let value = serde_json::from_slice::<Value>(body)
            .ok()
            .or_else(|| std::str::from_utf8(body).ok().map(|s| Value::String(s.to_owned())));
        self.check(label, checks, value.as_ref())
    }

    fn check(&mut self, label: &str, checks: &Reply, body: Option<&Value>) -> Result<(), Failed> {
        let stats = self.env.stats.clone();
        let Some(body) = body else {
            stats
                .failure(&format!("{label}: body"), || "the body is neither JSON nor UTF-8".into());
            return Err(Failed::Step);
        };
        let mut ok = true;
        for (name, path) in &checks.store {
            match path.lookup(body) {
                Some(v) => {
                    self.vars.insert(name.clone(), v.clone());
                }
                None => {
                    ok = false;
                    stats.failure(&format!("{label}: store {name}"), || {
                        format!("nothing at {path} to store in {name}; body {}", short(body))
                    });
                }
            }
        }
        for a in &checks.asserts {
            let found = a.path.lookup(body);
            let failure = match &a.check {
                Check::Exists(true) if found.is_none() => Some(("exists", "is absent".to_owned())),
                Check::Exists(false) if found.is_some() => Some((
                    "absent",
                    format!("is present: {}", short(found.unwrap_or(&Value::Null))),
                )),
                Check::Exists(_) => None,
                Check::Equals(expected) => match expected.render(&self.vars) {
                    Err(e) => Some(("equals", e.to_string())),
                    Ok(expected) => match found {
                        Some(v) if *v == expected => None,
                        Some(v) => {
                            Some(("equals", format!("expected {expected}, got {}", short(v))))
                        }
                        None => Some(("equals", format!("expected {expected}, found nothing"))),
                    },
                },
            };
            if let Some((what, detail)) = failure {
                ok = false;
                let path = &a.path;
                stats.failure(&format!("{label}: assert {path} {what}"), || {
                    format!("{path} {detail}")
                });
            }
        }
        if ok { Ok(()) } else { Err(Failed::Step) }
    }
}

/// A value as JSON text, cut to keep failure examples readable.
fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}
