//! Callgrind driver for dispatch: one client message through the pipeline and router to
//! a handler and back, counted in instructions by `cargo xtask bench` as
//! `(Ir(N) - Ir(0)) / N` (same protocol as pitaya-codec's `instructions` bench).
//!
//! - `instructions <case> <N>`: builds the case, then dispatches N messages.
//! - `instructions --list`: name, N, reference case and `-`, tab-separated.
//! - anything else (`cargo bench`, `cargo test`): runs each case a few times and checks
//!   its answer, so both stay green without valgrind.

use std::hint::black_box;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use pitaya_codec::Route;
use pitaya_core::Error;
use pitaya_handler::{
    AppState, Component, HandlerKind, HandlerService, Json, Request, Router, after_fn, before_fn,
};
use pitaya_serialize::SerializerKind;
use pitaya_session::{NoopEntity, SessionPool};
use tower::{Layer, ServiceExt};

const CASES: [&str; 4] = ["dispatch/raw", "dispatch/json", "dispatch/hooks", "dispatch/notfound"];
const ITERATIONS: u64 = 2000;

#[derive(serde::Serialize, serde::Deserialize)]
struct Move {
    x: i32,
    y: i32,
    facing: String,
}

async fn echo(body: Bytes) -> Result<Bytes, Error> {
    Ok(body)
}

async fn json(Json(m): Json<Move>) -> Result<Json<Move>, Error> {
    Ok(Json(m))
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    service: HandlerService,
    request: Request,
    expect_ok: bool,
}

impl Fixture {
    fn new(case: &str) -> Self {
        let mut router = Router::new();
        let room = Component::new("room").handler("echo", echo).handler("move", json);
        router.add(room).unwrap_or_else(|e| panic!("registering the bench component: {e}"));
        let mut service = HandlerService::new(router.into_service());
        if case == "dispatch/hooks" {
            service = before_fn(|req: Request| async move { Ok(req) }).layer(service);
            service =
                after_fn(|res: Result<Option<Bytes>, Error>| async move { res }).layer(service);
        }
        let (route, data): (&str, &'static [u8]) = match case {
            "dispatch/json" => ("room.move", br#"{"x":10,"y":-4,"facing":"north"}"#),
            "dispatch/notfound" => ("room.nope", b""),
            _ => ("room.echo", b"0123456789abcdef0123456789abcdef"),
        };
        let request = Request {
            session: SessionPool::new().create(Arc::new(NoopEntity)),
            route: Route::parse(route)
                .unwrap_or_else(|e| panic!("{e}"))
                .with_server_type("connector"),
            id: 1,
            kind: HandlerKind::Request,
            data: Bytes::from_static(data),
            serializer: SerializerKind::Json.serializer(),
            state: AppState::new(),
            ctx: pitaya_core::Context::new(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("building the runtime: {e}"));
        Self { rt, service, request, expect_ok: case != "dispatch/notfound" }
    }

    fn run(&self) -> Result<Option<Bytes>, Error> {
        let svc = self.service.clone();
        let req = self.request.clone();
        self.rt.block_on(svc.oneshot(black_box(req)))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--list" => {
            let mut out = std::io::stdout().lock();
            for case in CASES {
                if writeln!(out, "{case}\t{ITERATIONS}\tdispatch/raw\t-").is_err() {
                    return ExitCode::FAILURE;
                }
            }
        }
        [name, n] if CASES.contains(&name.as_str()) => {
            let fixture = Fixture::new(name);
            for _ in 0..n.parse::<u64>().unwrap_or(0) {
                let _ = black_box(fixture.run());
            }
        }
        _ => {
            for case in CASES {
                let fixture = Fixture::new(case);
                for _ in 0..3 {
                    if fixture.run().is_ok() != fixture.expect_ok {
                        eprintln!("instructions: case {case} answered unexpectedly");
                        return ExitCode::FAILURE;
                    }
                }
            }
            eprintln!("instructions: {} dispatch cases ran (smoke check only)", CASES.len());
        }
    }
    ExitCode::SUCCESS
}
