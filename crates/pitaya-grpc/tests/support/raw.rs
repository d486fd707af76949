//! gRPC without protobuf: a client and a server that send and see the exact message
//! bytes, to check the wire format against the spec's traces (Appendix A.6).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic::{Status, body::Body};

/// Messages as bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

#[derive(Debug)]
pub struct RawEncoder;

#[derive(Debug)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Sends `body` to `path` (`/protos.Pitaya/KickUser`) on `addr`; the reply's bytes.
pub async fn call(addr: SocketAddr, path: &'static str, body: &[u8]) -> Result<Vec<u8>, Status> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(body.to_vec()), path, RawCodec).await.map(|r| r.into_inner())
}

/// One request as a [`RawServer`] received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// A `protos.Pitaya` server that records each request and answers with the bytes given
/// for its path (an empty message for other paths).
pub struct RawServer {
    pub addr: SocketAddr,
    pub received: mpsc::UnboundedReceiver<Received>,
    _stop: oneshot::Sender<()>,
}

impl RawServer {
    pub async fn start(replies: HashMap<&'static str, Vec<u8>>) -> Self {
        let listener = TcpListener::bind(super::any_port()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, received) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let service = RawPitaya { tx, replies: Arc::new(replies) };
        tokio::spawn(
            tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
                TcpIncoming::from(listener),
                async {
                    let _ = stopped.await;
                },
            ),
        );
        Self { addr, received, _stop: stop }
    }

    /// The next request, bounded.
    pub async fn next(&mut self) -> Received {
        super::bounded("raw server to receive", self.received.recv()).await.unwrap()
    }
}

#[derive(Clone)]
struct RawPitaya {
    tx: mpsc::UnboundedSender<Received>,
    replies: Arc<HashMap<&'static str, Vec<u8>>>,
}

impl NamedService for RawPitaya {
    const NAME: &'static str = "protos.Pitaya";
}

impl tonic::codegen::Service<http::Request<Body>> for RawPitaya {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let headers = req.headers().clone();
        let reply = self.replies.get(path.as_str()).cloned().unwrap_or_default();
        let tx = self.tx.clone();
        Box::pin(async move {
            let unary = Unary { path, headers, reply, tx };
            Ok(tonic::server::Grpc::new(RawCodec).unary(unary, req).await)
        })
    }
}

struct Unary {
    path: String,
    headers: http::HeaderMap,
    reply: Vec<u8>,
    tx: mpsc::UnboundedSender<Received>,
}

impl tonic::server::UnaryService<Vec<u8>> for Unary {
    type Response = Vec<u8>;
    type Future = tonic::codegen::BoxFuture<tonic::Response<Vec<u8>>, Status>;

    fn call(&mut self, request: tonic::Request<Vec<u8>>) -> Self::Future {
        let received = Received {
            path: std::mem::take(&mut self.path),
            headers: std::mem::take(&mut self.headers),
            body: request.into_inner(),
        };
        let _ = self.tx.send(received);
        let reply = std::mem::take(&mut self.reply);
        Box::pin(async move { Ok(tonic::Response::new(reply)) })
    }
}
