//! [`push`]: POSTs Prometheus text to a Pushgateway over plain HTTP/1.1.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;

/// The whole exchange (connect, send, read the answer) must fit in this.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why pushing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The URL does not parse, or is not `http://`.
    #[error("bad pushgateway url {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Connecting or talking HTTP failed.
    #[error("pushgateway request failed: {0}")]
    Http(String),
    /// The gateway answered with a status other than 2xx.
    #[error("pushgateway answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the answer body.
        body: String,
    },
    /// No answer within 10 s.
    #[error("pushgateway did not answer within {PUSH_TIMEOUT:?}")]
    Timeout,
}

/// The URL metrics are POSTed to: `url` as is when its path already names a job
/// (`.../metrics/job/NAME[/label/value...]`), else `url` + `/metrics/job/{job}`.
///
/// # Errors
/// [`PushError::Url`].
pub fn job_url(url: &str, job: &str) -> Result<Uri, PushError> {
    let bad = |reason: &str| PushError::Url { url: url.to_owned(), reason: reason.to_owned() };
    let full = if url.contains("/metrics/job/") {
        url.to_owned()
    } else {
        format!("{}/metrics/job/{job}", url.trim_end_matches('/'))
    };
    let uri: Uri = full.parse().map_err(|_| bad("not a url"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// is supported"));
    }
    if uri.host().is_none() {
        return Err(bad("no host"));
    }
    Ok(uri)
}

/// POSTs `body` (Prometheus text format 0.0.4) to the Pushgateway at `url` under job
/// `job` (see [`job_url`]). POST replaces the pushed metric families with the same names
/// in that group and keeps the others.
///
/// # Errors
/// [`PushError`].
pub async fn push(url: &str, job: &str, body: String) -> Result<(), PushError> {
    let uri = job_url(url, job)?;
    tokio::time::timeout(PUSH_TIMEOUT, post(uri, body)).await.map_err(|_| PushError::Timeout)?
}

async fn post(uri: Uri, body: String) -> Result<(), PushError> {
    let http = |e: &dyn std::fmt::Display| PushError::Http(e.to_string());
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| http(&e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| http(&e))?;
    let driver = tokio::spawn(conn);
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let path = uri.path_and_query().map(|p| p.to_string()).unwrap_or_else(|| "/".into());
    let request = Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| http(&e))?;
    let response = sender.send_request(request).await.map_err(|e| http(&e))?;
    let status = response.status();
    let answer = response.into_body().collect().await.map_err(|e| http(&e))?.to_bytes();
    driver.abort();
    if status.is_success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&answer);
        Err(PushError::Status { status: status.as_u16(), body: text.chars().take(200).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_urls() {
        let u = job_url("http://127.0.0.1:9091", "bot").unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:9091/metrics/job/bot");
        let u = job_url("http://h:1/metrics/job/x/instance/y", "bot").unwrap();
        assert_eq!(u.path(), "/metrics/job/x/instance/y");
        assert!(job_url("https://h/", "bot").is_err());
        assert!(job_url("not a url", "bot").is_err());
    }
}
