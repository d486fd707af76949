//! The server runtime used directly, without the `pitaya` facade: an echo server built,
//! started, answering a client, and shut down. `cargo xtask test` runs it with the default
//! features and with `--no-default-features` (no cluster runtime in the build).

use std::time::Duration;

use bytes::Bytes;
use pitaya_client::{Client, ClientOptions};
use pitaya_core::Error;
use pitaya_handler::Component;
use pitaya_server::Builder;

async fn echo(body: Bytes) -> Result<Bytes, Error> {
    Ok(body)
}

#[tokio::test]
async fn an_echo_server_from_the_server_runtime_alone() {
    let run = async {
        let app = Builder::new()
            .tcp("127.0.0.1:0")
            .config(pitaya_config::PitayaConfig::default())
            .component(Component::new("room").handler("echo", echo))
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        assert!(app.is_ready().await);
        let addr = app.local_addrs()[0].1.to_string();
        let (client, _pushes) = Client::connect(&addr, ClientOptions::default()).await.unwrap();
        let reply = client.request("room.echo", Bytes::from_static(b"hi")).await.unwrap();
        assert_eq!(&reply[..], b"hi");
        let e = client.request("room.nope", Bytes::new()).await.unwrap_err();
        assert_eq!(e.server_code(), Some("PIT-404"));
        // A standalone server answers a route of another server type with PIT-404 too.
        let e = client.request("game.room.echo", Bytes::new()).await.unwrap_err();
        assert_eq!(e.server_code(), Some("PIT-404"));
        client.close().await;
        app.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(20), run).await.expect("the test took over 20 s");
}
