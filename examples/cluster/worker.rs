//! Reliable RPC through Redis workers: a frontend handler enqueues a job, a worker takes
//! it from Redis and calls a remote on a backend, retrying on failure.
//!
//! Needs NATS (`nats://localhost:4222`), etcd (`localhost:2379`) and Redis
//! (`localhost:6379`), overridable with `PITAYA_*` variables
//! (`PITAYA_WORKER_REDIS_SERVERURL=127.0.0.1:6380`). In two terminals:
//!
//! ```text
//! cargo run -p pitaya-cluster-examples --example worker -- room
//! cargo run -p pitaya-cluster-examples --example worker -- connector 3250
//! ```
//!
//! Then a client request `connector.jobs.join` with `{"name":"ann"}` answers the job id
//! at once; the `room` server logs `joined` when the worker's RPC reaches it. A name
//! starting with `fail` makes the remote fail, so the job is retried 10 s later
//! (`pitaya.worker.retry.*`), up to 3 times, then dropped.
//!
//! The connector runs the worker: it enqueues in its handler and its worker calls
//! `room.room.join` on a `room` server, chosen by the cluster.

use std::process::ExitCode;

use pitaya::config::ConfigLoader;
use pitaya::worker::{RpcJobs, Worker, WorkerClient, WorkerOptions};
use pitaya::{Component, Error, Json, Pitaya, RemoteComponent, RemoteRequest, State};
use serde::{Deserialize, Serialize};

/// The job's argument: Go `encoding/json` of the protobuf struct (proto field names,
/// zero values left out) is what goes into Redis.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
struct JoinArg {
    /// `name`
    #[prost(string, tag = "1")]
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
}

/// The remote's reply.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
struct JoinReply {
    /// `msg`
    #[prost(string, tag = "1")]
    #[serde(default, skip_serializing_if = "String::is_empty")]
    msg: String,
}

/// The handler's answer: the id of the enqueued job.
#[derive(Serialize)]
struct Enqueued {
    jid: String,
}

const ROUTE: &str = "room.room.join";

async fn join(
    State(jobs): State<WorkerClient>,
    Json(arg): Json<JoinArg>,
) -> Result<Json<Enqueued>, Error> {
    // Redis away: the client gets an error, the job is not silently lost.
    let jid = jobs
        .reliable_rpc(ROUTE, &Default::default(), &JoinReply::default(), &arg)
        .await
        .map_err(|e| Error::unknown(e.to_string()))?;
    Ok(Json(Enqueued { jid }))
}

fn room() -> RemoteComponent {
    RemoteComponent::new("room").remote("join", |_r: RemoteRequest, arg: JoinArg| async move {
        if arg.name.starts_with("fail") {
            tracing::warn!(name = %arg.name, "failing on purpose");
            return Err(Error::new("PIT-500", "failing on purpose"));
        }
        tracing::info!(name = %arg.name, "joined");
        Ok(JoinReply { msg: format!("welcome {}", arg.name) })
    })
}

async fn run(server_type: &str, port: u16) -> Result<(), Error> {
    let config = ConfigLoader::standard(None)
        .and_then(|l| l.load())
        .map_err(|e| Error::unknown(e.to_string()))?;
    let opts = WorkerOptions::from_config(&config.worker);
    let builder = Pitaya::builder().server_type(server_type).config(config).etcd_nats_cluster();
    if server_type != "connector" {
        let running = builder.frontend(false).remote(room()).build()?.start().await?;
        running.wait_for_signal().await;
        running.shutdown().await;
        return Ok(());
    }
    let client = WorkerClient::new(&opts).map_err(|e| Error::unknown(e.to_string()))?;
    let running = builder
        .tcp(format!("0.0.0.0:{port}"))
        .state(client)
        .component(Component::new("jobs").handler("join", join))
        .build()?
        .start()
        .await?;
    // After start: jobs need the cluster, which the running app's handle reaches.
    let jobs = RpcJobs::new().route::<JoinArg, JoinReply>(ROUTE);
    let worker = Worker::new(opts, jobs, running.handle().clone())
        .start()
        .map_err(|e| Error::unknown(e.to_string()))?;
    running.wait_for_signal().await;
    // Running jobs finish (and record their outcome) before the cluster goes away.
    worker.stop().await;
    running.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let server_type = args.next().unwrap_or_else(|| "connector".to_owned());
    let port = match args.next().map(|p| p.parse::<u16>()) {
        None => 3250,
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("worker: bad port: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&server_type, port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
