//! The echo server's application, shared by `examples/echo.rs` and the integration tests.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bytes::Bytes;
use pitaya::config::PitayaConfig;
use pitaya::{
    AcceptorSpec, AppHandle, Component, Error, Json, Msg, Pitaya, RunningApp, SerializerKind,
    Session,
};

/// Routes of the echo server (for the dictionary and docs).
pub const ROUTES: [&str; 6] =
    ["room.echo", "room.echojson", "room.notify", "room.fail", "room.join", "room.message"];

/// The echo server's command line.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    about = "Pitaya echo server: room.echo, room.echojson, room.notify, room.fail, room.join, room.message"
)]
pub struct EchoArgs {
    /// TCP listen address.
    #[arg(long)]
    pub tcp: Option<String>,
    /// WebSocket listen address.
    #[arg(long)]
    pub ws: Option<String>,
    /// Compress data messages with zlib when that makes them shorter.
    #[arg(long)]
    pub compression: bool,
    /// Offer a route dictionary covering every route and the push routes.
    #[arg(long)]
    pub dict: bool,
    /// Client serializer: json or protobuf (default: `pitaya.serializertype`).
    #[arg(long)]
    pub serializer: Option<SerializerKind>,
    /// PEM certificate chain: serve TLS on every acceptor.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Enable session resume (`pitaya.session.resume.enabled`, docs/resume.md): clients
    /// that ask for a token can come back to their session after a dropped connection.
    #[arg(long)]
    pub resume: bool,
    /// Print the resolved configuration (`pitaya.*` keys) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// The reply of `room.join`: `{"code":200}` in JSON, field 1 in protobuf.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Code {
    /// Always 200.
    #[prost(int32, tag = "1")]
    pub code: i32,
}

async fn echo(body: Bytes) -> Result<Bytes, Error> {
    Ok(body)
}

async fn echo_json(Json(value): Json<serde_json::Value>) -> Result<Json<serde_json::Value>, Error> {
    Ok(Json(value))
}

async fn notify(s: Session, body: Bytes) {
    if let Err(e) = s.push("onNotify", body).await {
        tracing::debug!(error = %e, "onNotify push failed");
    }
}

async fn fail() -> Result<Bytes, Error> {
    Err(Error::new("PIT-499", "fail"))
}

async fn join(s: Session, app: AppHandle) -> Result<Msg<Code>, Error> {
    let uid = match s.uid() {
        Some(uid) => uid,
        None => {
            let uid = format!("user-{}", s.id());
            s.bind(&uid).await?;
            uid.into()
        }
    };
    match app.groups().create("room").await {
        Ok(()) | Err(pitaya::groups::GroupError::AlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    match app.groups().add_member("room", &uid).await {
        Ok(()) | Err(pitaya::groups::GroupError::MemberAlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Msg(Code { code: 200 }))
}

async fn message(app: AppHandle, body: Bytes) {
    match app.broadcast("room", "onMessage", body).await {
        Ok(failed) if !failed.is_empty() => {
            tracing::debug!(?failed, "some members missed a message")
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "broadcast failed"),
    }
}

/// The `room` component.
pub fn component() -> Component {
    Component::new("room")
        .handler("echo", echo)
        .handler("echojson", echo_json)
        .handler("notify", notify)
        .handler("fail", fail)
        .handler("join", join)
        .handler("message", message)
}

/// The route serving the echo server's documentation (see [`docs`]).
pub const DOCS_ROUTE: &str = "connector.docsHandler.docs";

/// The echo server's documentation: `room.join` replies [`Code`], message `echo.Code`.
pub fn docs() -> pitaya::handler::Docs {
    use pitaya::handler::docs::prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
        field_descriptor_proto::{Label, Type},
    };
    let code = FieldDescriptorProto {
        name: Some("code".into()),
        number: Some(1),
        label: Some(Label::Optional.into()),
        r#type: Some(Type::Int32.into()),
        json_name: Some("code".into()),
        ..Default::default()
    };
    let file = FileDescriptorProto {
        name: Some("echo.proto".into()),
        package: Some("echo".into()),
        message_type: vec![DescriptorProto {
            name: Some("Code".into()),
            field: vec![code],
            ..Default::default()
        }],
        syntax: Some("proto3".into()),
        ..Default::default()
    };
    pitaya::handler::Docs::new()
        .descriptors(FileDescriptorSet { file: vec![file] })
        .message::<Code>("echo.Code")
}

/// Builds and starts the echo server.
///
/// # Errors
/// Bad configuration, unreadable TLS files, or addresses that cannot be bound.
pub async fn start(args: &EchoArgs) -> Result<RunningApp> {
    start_with_config(args, config(args)?).await
}

/// The configuration in force: Go's defaults, then `PITAYA_*` variables, then flags.
///
/// # Errors
/// A `PITAYA_*` variable with a bad value.
pub fn config(args: &EchoArgs) -> Result<PitayaConfig> {
    let mut config = PitayaConfig::load(None).context("reading PITAYA_* configuration")?;
    if args.compression {
        config.handler.messages.compression = true;
    } else if std::env::var_os("PITAYA_HANDLER_MESSAGES_COMPRESSION").is_none() {
        // The black-box contract: compression is off unless asked for.
        config.handler.messages.compression = false;
    }
    if args.resume {
        config.session.resume.enabled = true;
    }
    Ok(config)
}

/// Starts the echo server with an explicit configuration (tests use this); `--resume`
/// still turns session resume on.
///
/// # Errors
/// As [`start`].
pub async fn start_with_config(args: &EchoArgs, mut config: PitayaConfig) -> Result<RunningApp> {
    if args.resume {
        config.session.resume.enabled = true;
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(pitaya::acceptor::load_tls_config(cert, key)?),
        _ => None,
    };
    let mut builder =
        Pitaya::builder().server_type("connector").config(config).component(component());
    let tcp = args.tcp.clone().or_else(|| args.ws.is_none().then(|| "127.0.0.1:3250".to_owned()));
    for (addr, ws) in [(tcp, false), (args.ws.clone(), true)] {
        let Some(addr) = addr else { continue };
        let mut spec = if ws { AcceptorSpec::ws(addr) } else { AcceptorSpec::tcp(addr) };
        if let Some(tls) = &tls {
            spec = spec.tls(tls.clone());
        }
        builder = builder.acceptor(spec);
    }
    if let Some(kind) = args.serializer {
        builder = builder.serializer(kind);
    }
    // Rate limiting is off unless configured: any PITAYA_CONN_RATELIMITING_* variable
    // turns it on (and `...FORCEDISABLE=true` still wins, as in Go).
    if std::env::vars_os()
        .any(|(k, _)| k.to_string_lossy().starts_with("PITAYA_CONN_RATELIMITING_"))
    {
        builder = builder.rate_limiting(true);
    }
    // Self-description for `pitaya-cli --docs connector.docsHandler.docs`.
    builder = builder.docs("docsHandler", docs());
    if args.dict {
        let routes = ROUTES.iter().copied().chain(["onNotify", "onMessage"]);
        builder = builder.dictionary(routes.zip(1u16..));
    }
    Ok(builder.build().map_err(Error::into_std)?.start().await.map_err(Error::into_std)?)
}
