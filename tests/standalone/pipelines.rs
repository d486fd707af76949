//! Pipelines on a running server: before and after hooks wrap every handler.

use bytes::Bytes;
use pitaya::{Error, after_fn, before_fn};

use crate::support::{Server, config, echo_builder, server_error, within};

#[tokio::test]
async fn before_and_after_hooks_wrap_the_handlers() {
    within(async {
        let builder = echo_builder(config(&[]))
            .layer(before_fn(|req: pitaya::handler::Request| async move {
                if req.data.as_ref() == b"forbidden" {
                    return Err(Error::new("PIT-403", "stopped by a before hook"));
                }
                Ok(req)
            }))
            .layer(after_fn(|res: Result<Option<Bytes>, Error>| async move {
                res.map(|body| body.map(|b| Bytes::from([b.as_ref(), b"!"].concat())))
            }));
        let server = Server::start(builder).await;
        let (client, _pushes) = server.client().await;
        assert_eq!(client.request("room.echo", "hi").await.expect("echo"), "hi!");
        let e = server_error(client.request("room.echo", "forbidden").await);
        assert_eq!((e.code.as_str(), e.msg.as_str()), ("PIT-403", "stopped by a before hook"));
        server.shutdown().await;
    })
    .await;
}
