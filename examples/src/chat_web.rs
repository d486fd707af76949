//! The chat room's web page: a small HTTP server that serves `examples/web/` and the JS
//! client from `clients/js/src/`, all embedded in the binary, so `cargo run --example chat`
//! needs no npm step.
//!
//! | Path | Content |
//! |---|---|
//! | `/` | `examples/web/index.html` |
//! | `/chat.js` | `examples/web/chat.js`, the page's script |
//! | `/pitaya/client.js`, `/pitaya/protocol.js` | the JS client, as committed |
//! | `/config.js` | `export const wsHost = "…"; export const wsPort = …;`: where the page connects |

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const INDEX_HTML: &str = include_str!("../web/index.html");
const CHAT_JS: &str = include_str!("../web/chat.js");
const CLIENT_JS: &str = include_str!("../../clients/js/src/client.js");
const PROTOCOL_JS: &str = include_str!("../../clients/js/src/protocol.js");

const HTML: &str = "text/html; charset=utf-8";
/// ES modules only load with a JavaScript MIME type.
const JS: &str = "text/javascript; charset=utf-8";

/// The running page server; stops when [`shutdown`](Self::shutdown) is called or the
/// value is dropped.
pub struct WebServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl WebServer {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's address, `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops accepting, lets open requests finish and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves the page on `addr`; the page connects to the chat's WebSocket acceptor at `ws`.
///
/// When `ws` is an unspecified address (`0.0.0.0`, `::`), the page connects to the host
/// it was loaded from, on `ws`'s port.
///
/// # Errors
/// `addr` cannot be bound.
pub async fn serve(addr: &str, ws: SocketAddr) -> Result<WebServer> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the page's HTTP address {addr}"))?;
    let local = listener.local_addr()?;
    let app = router(config_js(ws));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "chat page server stopped");
        }
    });
    Ok(WebServer { addr: local, stop: Some(stop), task: Some(task) })
}

/// The module the page imports to learn the WebSocket address.
fn config_js(ws: SocketAddr) -> String {
    let host =
        if ws.ip().is_unspecified() { "null".to_owned() } else { format!("\"{}\"", ws.ip()) };
    format!("export const wsHost = {host};\nexport const wsPort = {};\n", ws.port())
}

fn router(config: String) -> Router {
    Router::new()
        .route("/", get(|| async { asset(HTML, INDEX_HTML) }))
        .route("/index.html", get(|| async { asset(HTML, INDEX_HTML) }))
        .route("/chat.js", get(|| async { asset(JS, CHAT_JS) }))
        .route("/pitaya/client.js", get(|| async { asset(JS, CLIENT_JS) }))
        .route("/pitaya/protocol.js", get(|| async { asset(JS, PROTOCOL_JS) }))
        .route(
            "/config.js",
            get(move || {
                let config = config.clone();
                async move { asset(JS, config) }
            }),
        )
}

fn asset(content_type: &'static str, body: impl Into<String>) -> impl IntoResponse {
    // no-cache: a rebuilt example must not run against a stale script.
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")], body.into())
}

#[cfg(test)]
mod tests {
    use super::config_js;

    #[test]
    fn config_names_the_acceptor_or_defers_to_the_page_host() {
        let bound = config_js("127.0.0.1:3251".parse().unwrap());
        assert_eq!(bound, "export const wsHost = \"127.0.0.1\";\nexport const wsPort = 3251;\n");
        let any = config_js("0.0.0.0:4000".parse().unwrap());
        assert_eq!(any, "export const wsHost = null;\nexport const wsPort = 4000;\n");
        let v6 = config_js("[::1]:5000".parse().unwrap());
        assert!(v6.starts_with("export const wsHost = \"::1\";"), "{v6}");
    }
}
