//! The chat page in headless Chromium: `node --test clients/js/e2e/` opens the page served
//! by the chat example (started here on free ports) as two people who join and talk, and
//! saves screenshots to `target/browser-artifacts/`.
//!
//! Needs Debian's chromium at /usr/bin/chromium (or `CHROMIUM_PATH`) and `npm ci` in
//! clients/js; `cargo xtask test` installs both.

mod js_support;

use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_the_browser() {
    js_support::require_node(&["playwright-core"]);
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: run `cargo xtask test` (installs Debian's chromium) or \
         `apt-get install chromium`"
    );
    let running = pitaya_examples::chat::start("127.0.0.1:0", "127.0.0.1:0").await.unwrap();
    let (_, ws) = *running.local_addrs().iter().find(|(t, _)| t.is_websocket()).unwrap();
    let page = pitaya_examples::chat::web::serve("127.0.0.1:0", ws).await.unwrap();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-artifacts");
    let env = vec![
        ("PITAYA_CHAT_URL", page.url()),
        ("CHROMIUM_PATH", chromium),
        ("PITAYA_BROWSER_ARTIFACTS", artifacts.display().to_string()),
    ];
    let outcome = tokio::task::spawn_blocking(move || js_support::node_test(&["e2e/"], &env)).await;
    page.shutdown().await;
    running.shutdown().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    assert!(artifacts.join("chat.png").is_file(), "the screenshot was saved");
}
