//! The chat example in headless Chromium, with the node scripts in `clients/js/e2e/`
//! (the chat server and its page started here on free ports):
//!
//! - `chat.test.js`: two people open the page, join and talk; screenshots go to
//!   `target/browser-artifacts/`;
//! - `resume.test.js`: the JS client in a page, with `resume`, talks to the chat server
//!   through a proxy that holds and then cuts the page's socket; the client resumes the
//!   session and nothing is lost or doubled.
//!
//! Needs Debian's chromium at /usr/bin/chromium (or `CHROMIUM_PATH`) and `npm ci` in
//! clients/js; `cargo xtask test` installs both.

mod cut_proxy;
mod js_support;

use std::path::Path;

/// Debian's Chromium, or `CHROMIUM_PATH`; panics with what to do when it is missing.
fn chromium() -> String {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: run `cargo xtask test` (installs Debian's chromium) or \
         `apt-get install chromium`"
    );
    chromium
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_the_browser() {
    js_support::require_node(&["playwright-core"]);
    let chromium = chromium();
    let running = pitaya_examples::chat::start("127.0.0.1:0", "127.0.0.1:0").await.unwrap();
    let (_, ws) = *running.local_addrs().iter().find(|(t, _)| t.is_websocket()).unwrap();
    let page = pitaya_examples::chat::web::serve("127.0.0.1:0", ws).await.unwrap();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-artifacts");
    let env = vec![
        ("PITAYA_CHAT_URL", page.url()),
        ("CHROMIUM_PATH", chromium),
        ("PITAYA_BROWSER_ARTIFACTS", artifacts.display().to_string()),
    ];
    let outcome =
        tokio::task::spawn_blocking(move || js_support::node_test(&["e2e/chat.test.js"], &env))
            .await;
    page.shutdown().await;
    running.shutdown().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    assert!(artifacts.join("chat.png").is_file(), "the screenshot was saved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_resumes_its_session_after_its_socket_is_cut() {
    js_support::require_node(&["playwright-core", "ws"]);
    let chromium = chromium();
    // The chat example enables session resume.
    let running = pitaya_examples::chat::start("127.0.0.1:0", "127.0.0.1:0").await.unwrap();
    let (_, ws) = *running.local_addrs().iter().find(|(t, _)| t.is_websocket()).unwrap();
    let proxy = cut_proxy::CutProxy::start(ws).await.unwrap();
    // The page only serves the client's modules here: the test connects it itself.
    let page = pitaya_examples::chat::web::serve("127.0.0.1:0", proxy.addr()).await.unwrap();
    let env = vec![
        ("PITAYA_CHAT_URL", page.url()),
        ("PITAYA_CHAT_WS", format!("ws://{ws}/")),
        ("PITAYA_PROXY_WS", format!("ws://{}/", proxy.addr())),
        ("PITAYA_PROXY_CONTROL", proxy.control_url()),
        ("CHROMIUM_PATH", chromium),
    ];
    let outcome =
        tokio::task::spawn_blocking(move || js_support::node_test(&["e2e/resume.test.js"], &env))
            .await;
    drop(proxy);
    page.shutdown().await;
    running.shutdown().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
