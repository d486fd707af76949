//! [`Shell`]: the state behind the commands (connection, handshake data, schema,
//! learned routes) and their execution. File mode and the REPL both drive it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use pitaya_client::{
    Client, ClientError, ClientOptions, Endpoint, Events, HandshakeRequest, Pushes, ResumeEvent,
    ResumeOptions, TlsOptions,
};
use tokio::task::JoinHandle;

use crate::command::{Command, HELP};
use crate::docs::{self, Routes};
use crate::output::Out;
use crate::schema::{RouteTypes, Schema};

/// Settings from the command line that every connection uses.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    /// Route answering the documentation request (`--docs`).
    pub(crate) docs_route: Option<String>,
    /// PEM file of a CA (or self-signed certificate) to trust for TLS.
    pub(crate) ca: Option<PathBuf>,
    /// Accept any TLS certificate.
    pub(crate) insecure: bool,
    /// Name checked against the server certificate instead of the host.
    pub(crate) server_name: Option<String>,
    /// Use TLS on `host:port` and `ws://` addresses too.
    pub(crate) tls: bool,
    /// Request timeout.
    pub(crate) timeout: Duration,
    /// Connect + handshake timeout.
    pub(crate) connect_timeout: Duration,
    /// Ask for session resume (off with `--no-resume`).
    pub(crate) resume: bool,
}

/// What to do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Quit,
}

/// Routes for completion, shared with the line editor.
pub(crate) type RouteList = Arc<Mutex<Vec<String>>>;

/// Pushes shown per route, so `waitpush` can wait for one.
#[derive(Default)]
struct PushLog {
    seen: Mutex<HashMap<String, u64>>,
    notify: tokio::sync::Notify,
}

struct Conn {
    client: Client,
    printer: JoinHandle<()>,
    /// Resume events the `resume` command prints itself, so the event printer skips them.
    skip_events: Arc<AtomicUsize>,
}

/// The shell's state.
pub(crate) struct Shell {
    settings: Settings,
    handshake: HandshakeRequest,
    conn: Option<Conn>,
    schema: Arc<RwLock<Schema>>,
    routes: RouteList,
    docs: Routes,
    history: Vec<String>,
    pushes: Arc<PushLog>,
    waited: HashMap<String, u64>,
    out: Out,
}

impl Shell {
    pub(crate) fn new(settings: Settings, schema: Schema, out: Out) -> Self {
        Self {
            settings,
            handshake: ClientOptions::default().handshake,
            conn: None,
            schema: Arc::new(RwLock::new(schema)),
            routes: RouteList::default(),
            docs: Routes::new(),
            history: Vec::new(),
            pushes: Arc::default(),
            waited: HashMap::new(),
            out,
        }
    }

    /// The routes known for completion.
    pub(crate) fn route_list(&self) -> RouteList {
        self.routes.clone()
    }

    /// Runs one line. `Err` means the command failed; its message is already printed.
    pub(crate) async fn run_line(&mut self, line: &str) -> Result<Flow, ()> {
        let command = match Command::parse(line) {
            Ok(Command::Nothing) => return Ok(Flow::Continue),
            Ok(command) => command,
            Err(usage) => {
                self.out.error(usage);
                return Err(());
            }
        };
        self.history.push(line.trim().to_owned());
        self.execute(command).await.map_err(|e| {
            self.out.error(format!("{e:#}"));
        })
    }

    async fn execute(&mut self, command: Command) -> Result<Flow> {
        match command {
            Command::Connect(addr) => self.connect(&addr).await?,
            Command::Disconnect => match self.conn.take() {
                Some(conn) => {
                    conn.client.close().await;
                    // The printer ends once the buffered pushes are shown.
                    let _ = conn.printer.await;
                    self.out.line("disconnected");
                }
                None => bail!("not connected"),
            },
            Command::Resume => self.resume().await?,
            Command::Request { route, data } => self.request(&route, &data).await?,
            Command::Notify { route, data } => {
                let client = self.client()?;
                let body = self.read_schema().encode_request(&route, &data)?;
                client.notify(&route, body).await.map_err(|e| explain(&route, e))?;
            }
            Command::Push { route, message } => {
                let mut schema = self.write_schema();
                schema.check(&message)?;
                schema.set_push(&route, &message);
            }
            Command::Types { route, input, output } => {
                let mut schema = self.write_schema();
                for name in input.iter().chain(output.iter()) {
                    schema.check(name)?;
                }
                schema.set_route(&route, RouteTypes { input, output });
            }
            Command::WaitPush { route, timeout } => self.wait_push(&route, timeout).await?,
            Command::SetHandshake(args) => self.set_handshake(&args)?,
            Command::Docs => self.show_docs()?,
            Command::History => {
                for (i, line) in self.history.iter().enumerate() {
                    self.out.line(format!("{:>4}  {line}", i + 1));
                }
            }
            Command::Help => self.out.line(HELP),
            Command::Quit => {
                self.close().await;
                return Ok(Flow::Quit);
            }
            Command::Nothing => {}
        }
        Ok(Flow::Continue)
    }

    /// Closes the connection, if any, after showing the pushes already received.
    pub(crate) async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.client.close().await;
            let _ = conn.printer.await;
        }
    }

    fn client(&self) -> Result<Client> {
        match &self.conn {
            Some(conn) if !conn.client.is_closed() => Ok(conn.client.clone()),
            Some(conn) => bail!(
                "not connected (connection {})",
                conn.client.close_reason().map_or_else(|| "closed".to_owned(), |r| r.to_string())
            ),
            None => bail!("not connected: use connect ADDR first"),
        }
    }

    fn read_schema(&self) -> std::sync::RwLockReadGuard<'_, Schema> {
        self.schema.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_schema(&self) -> std::sync::RwLockWriteGuard<'_, Schema> {
        self.schema.write().unwrap_or_else(PoisonError::into_inner)
    }

    async fn connect(&mut self, addr: &str) -> Result<()> {
        if self.conn.as_ref().is_some_and(|c| !c.client.is_closed()) {
            bail!("already connected: disconnect first");
        }
        let endpoint: Endpoint = addr.parse()?;
        let opts = self.options(&endpoint)?;
        let (client, pushes) = Client::connect_to(&endpoint, opts).await.map_err(|e| match e {
            ClientError::Connect(io) => anyhow!("cannot reach {endpoint}: {io}"),
            ClientError::Timeout => anyhow!(
                "timed out connecting to {endpoint} (no handshake within {:?})",
                self.settings.connect_timeout
            ),
            ClientError::HandshakeRejected { code } => {
                anyhow!("{endpoint} rejected the handshake with code {code}")
            }
            other => anyhow!("cannot connect to {endpoint}: {other}"),
        })?;
        let sys = &client.handshake_response().sys;
        self.out.line(format!(
            "connected to {endpoint} (serializer {}, heartbeat {:?})",
            if sys.serializer.is_empty() { "json" } else { &sys.serializer },
            sys.heartbeat
        ));
        if let (Some(token), Some(ttl)) = (client.resume_token(), client.resume_ttl()) {
            self.out.line(format!("resume token {token} (ttl {ttl:?})"));
        }
        let mut routes: Vec<String> = sys.dict.keys().cloned().collect();
        let printer = tokio::spawn(show_pushes(
            pushes,
            self.schema.clone(),
            self.out.clone(),
            self.pushes.clone(),
            client.clone(),
        ));
        let skip_events = Arc::new(AtomicUsize::new(0));
        tokio::spawn(show_events(client.events(), self.out.clone(), skip_events.clone()));
        self.conn = Some(Conn { client: client.clone(), printer, skip_events });
        if let Some(route) = self.settings.docs_route.clone() {
            let mut schema = std::mem::take(&mut *self.write_schema());
            let loaded = docs::load(&client, &route, &mut schema).await;
            *self.write_schema() = schema;
            self.docs = loaded.with_context(|| format!("cannot load docs from {route}"))?;
            routes.extend(self.docs.keys().cloned());
            self.show_docs()?;
        }
        // Short forms too, since routes of the own server type may omit it.
        let shorts: Vec<String> = routes
            .iter()
            .filter(|r| r.matches('.').count() == 2)
            .filter_map(|r| r.split_once('.').map(|(_, s)| s.to_owned()))
            .collect();
        routes.extend(shorts);
        routes.sort();
        routes.dedup();
        *self.routes.lock().unwrap_or_else(PoisonError::into_inner) = routes;
        Ok(())
    }

    fn options(&self, endpoint: &Endpoint) -> Result<ClientOptions> {
        let s = &self.settings;
        let mut opts = ClientOptions {
            handshake: self.handshake.clone(),
            request_timeout: s.timeout,
            connect_timeout: s.connect_timeout,
            resume: s.resume.then(ResumeOptions::default),
            ..ClientOptions::default()
        };
        if endpoint.tls || s.tls {
            let tls = match (&s.ca, s.insecure) {
                (Some(ca), _) => {
                    let pem =
                        std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
                    TlsOptions::with_root_pem(&pem)?
                }
                (None, true) => TlsOptions::insecure(),
                (None, false) => bail!("tls needs --ca FILE (the CA to trust) or --insecure"),
            };
            opts.tls = Some(match &s.server_name {
                Some(name) => tls.server_name(name.clone()),
                None => tls,
            });
        }
        Ok(opts)
    }

    /// Drops the connection and waits for the session to come back on a new one.
    async fn resume(&mut self) -> Result<()> {
        let client = self.client()?;
        let Some(conn) = &self.conn else { bail!("not connected") };
        if client.resume_token().is_none() {
            bail!(
                "no resume token: the server did not grant one (resume disabled there, or --no-resume here)"
            );
        }
        let mut events = client.events();
        // The dropped event and the outcome are printed here, not by the event printer.
        conn.skip_events.fetch_add(2, Ordering::SeqCst);
        client.cut_connection();
        let outcome = async {
            loop {
                match events.recv().await {
                    Some(ResumeEvent::Dropped { .. }) => continue,
                    other => return other,
                }
            }
        };
        // Backoff and handshake within the ttl; bounded here by a generous multiple of
        // the connect timeout so that a script cannot hang.
        let limit = self.settings.connect_timeout * 4;
        match tokio::time::timeout(limit, outcome).await {
            Ok(Some(ResumeEvent::Resumed { token, resent })) => {
                self.out.line(format!("resumed session (token {token}, {resent} packets re-sent)"));
                Ok(())
            }
            Ok(Some(ResumeEvent::FreshSession { token, failed })) => {
                self.out.line(format!(
                    "fresh session (token {}): the server no longer had the old one, {failed} requests lost; log in again",
                    token.as_deref().unwrap_or("none")
                ));
                Ok(())
            }
            Ok(_) => bail!(
                "resume failed: {}",
                client.close_reason().map_or_else(|| "closed".to_owned(), |r| r.to_string())
            ),
            Err(_) => bail!("no resume within {limit:?}"),
        }
    }

    async fn request(&mut self, route: &str, data: &str) -> Result<()> {
        let client = self.client()?;
        let body = self.read_schema().encode_request(route, data)?;
        match client.request(route, body).await {
            Ok(reply) => {
                let decoded = match self.read_schema().decode_reply(route, &reply) {
                    Some(Ok(v)) => Some(v),
                    Some(Err(e)) => {
                        self.out.error(format!("{e:#}; showing the raw reply"));
                        None
                    }
                    None => None,
                };
                self.out.line(format!("sv-> {}", self.out.body(&reply, decoded)));
                Ok(())
            }
            Err(ClientError::Server(payload)) => {
                self.out.line(format!("sv-> {}", self.out.server_error(&payload)));
                Err(anyhow!("{route} failed with {}", payload.code))
            }
            Err(e) => Err(explain(route, e)),
        }
    }

    async fn wait_push(&mut self, route: &str, timeout: Duration) -> Result<()> {
        let wanted = self.waited.get(route).copied().unwrap_or(0) + 1;
        let log = self.pushes.clone();
        let wait = async {
            loop {
                let notified = log.notify.notified();
                let seen =
                    log.seen.lock().unwrap_or_else(PoisonError::into_inner).get(route).copied();
                if seen.unwrap_or(0) >= wanted {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| anyhow!("no push on {route} within {timeout:?}"))?;
        self.waited.insert(route.to_owned(), wanted);
        Ok(())
    }

    fn set_handshake(&mut self, args: &str) -> Result<()> {
        if args.starts_with('{') {
            self.handshake = serde_json::from_str(args).context("not a handshake json object")?;
            return Ok(());
        }
        let (key, value) = args
            .split_once(char::is_whitespace)
            .map(|(k, v)| (k, v.trim()))
            .ok_or_else(|| anyhow!("usage: sethandshake KEY VALUE"))?;
        let sys = &mut self.handshake.sys;
        match key {
            "platform" => sys.platform = value.to_owned(),
            "libVersion" => sys.lib_version = value.to_owned(),
            "version" | "clientVersion" => sys.client_version = value.to_owned(),
            "buildNumber" | "clientBuildNumber" => sys.client_build_number = value.to_owned(),
            _ => {
                let Some(user_key) = key.strip_prefix("user.") else {
                    bail!(
                        "unknown handshake key {key}: expected platform, libVersion, clientVersion, clientBuildNumber or user.KEY"
                    );
                };
                let value = serde_json::from_str(value)
                    .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
                self.handshake.user.get_or_insert_default().insert(user_key.to_owned(), value);
            }
        }
        Ok(())
    }

    fn show_docs(&self) -> Result<()> {
        if self.docs.is_empty() {
            bail!("no docs loaded: start with --docs ROUTE and connect");
        }
        for (route, doc) in &self.docs {
            let input = doc.input.as_deref().unwrap_or("-");
            let output = doc.output.as_deref().unwrap_or("-");
            self.out.line(format!("{:<7} {route}  {input} -> {output}", doc.section));
        }
        Ok(())
    }
}

/// A client error in words, naming the route.
fn explain(route: &str, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Timeout => {
            anyhow!("no reply to {route} in time (the server may still process it)")
        }
        ClientError::Closed => anyhow!("connection closed before {route} was answered"),
        other => anyhow!("{route}: {other}"),
    }
}

/// Prints the resume events that the `resume` command does not print itself.
async fn show_events(mut events: Events, out: Out, skip: Arc<AtomicUsize>) {
    while let Some(event) = events.recv().await {
        let skipped =
            skip.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if skipped {
            continue;
        }
        match event {
            ResumeEvent::Dropped { reason } => {
                out.line(format!("connection dropped ({reason}); resuming"));
            }
            ResumeEvent::Resumed { token, .. } => out.line(format!("resumed session (token {token})")),
            ResumeEvent::FreshSession { token, failed } => out.line(format!(
                "fresh session (token {}): the server no longer had the old one, {failed} requests lost; log in again",
                token.as_deref().unwrap_or("none")
            )),
            _ => {}
        }
    }
}

/// Prints pushes as they arrive, then why the connection ended.
async fn show_pushes(
    mut pushes: Pushes,
    schema: Arc<RwLock<Schema>>,
    out: Out,
    log: Arc<PushLog>,
    client: Client,
) {
    while let Some(push) = pushes.recv().await {
        let decoded = schema
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .decode_push(&push.route, &push.data);
        let decoded = match decoded {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                out.error(format!("{e:#}; showing the raw push"));
                None
            }
            None => None,
        };
        out.line(format!("sv-> push {} {}", push.route, out.body(&push.data, decoded)));
        *log.seen.lock().unwrap_or_else(PoisonError::into_inner).entry(push.route).or_default() +=
            1;
        log.notify.notify_waiters();
    }
    if let Some(reason) = client.close_reason().filter(|r| *r != pitaya_client::CloseReason::Local)
    {
        out.line(format!("disconnected: {reason}"));
    }
}
