//! The job JSON of spec §10, written field for field as go-workers writes it, and read
//! back leniently (any key order, `retry` as a bool or a number).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::keys::RPC_QUEUE;

/// The retry policy written into each job (`retry`, `retry_max`, `retry_options`):
/// Pitaya's `pitaya.worker.retry.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `retry`: whether a failed job is retried at all.
    pub enabled: bool,
    /// `retry_max`: retries after the first failure (a job runs up to `max + 2` times,
    /// as go-workers counts from 0).
    pub max: u32,
    /// `retry_options.exp`: exponent of the retry count in the delay.
    pub exponential: u32,
    /// `retry_options.min_delay`, seconds.
    pub min_delay: u32,
    /// `retry_options.max_delay`, seconds; 0 means no upper bound.
    pub max_delay: u32,
    /// `retry_options.max_rand`, seconds: the random part is `rand(max_rand) * (count+1)`.
    pub max_random: u32,
}

impl Default for RetryPolicy {
    /// Pitaya's code defaults: on, max 2, exp 5, min 10, max 10, rand 0 (spec §13.2).
    fn default() -> Self {
        Self::from(&pitaya_config::model::WorkerRetryConfig::default())
    }
}

impl From<&pitaya_config::model::WorkerRetryConfig> for RetryPolicy {
    fn from(c: &pitaya_config::model::WorkerRetryConfig) -> Self {
        Self {
            enabled: c.enabled,
            max: c.max,
            exponential: c.exponential,
            min_delay: c.min_delay,
            max_delay: c.max_delay,
            max_random: c.max_random,
        }
    }
}

/// The `retry_options` a job carries; absent fields take go-workers' library defaults
/// (exp 4, min 15, max none, rand 30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOptions {
    /// `exp`
    pub exp: u64,
    /// `min_delay`, seconds.
    pub min_delay: u64,
    /// `max_delay`, seconds; `None` (absent or 0) means no upper bound.
    pub max_delay: Option<u64>,
    /// `max_rand`, seconds.
    pub max_rand: u64,
}

impl RetryOptions {
    /// Seconds until retry number `count` (the job's `retry_count` after this failure):
    /// `min(count^exp + min_delay + rand*(count+1), max_delay)` where `rand` is drawn by
    /// the caller from `0..max_rand`. Saturates instead of overflowing.
    pub fn delay(&self, count: u64, rand: u64) -> u64 {
        let exp = u32::try_from(self.exp).unwrap_or(u32::MAX);
        let delay = count
            .saturating_pow(exp)
            .saturating_add(self.min_delay)
            .saturating_add(rand.saturating_mul(count.saturating_add(1)));
        match self.max_delay {
            Some(max) => delay.min(max),
            None => delay,
        }
    }
}

/// Builds the JSON of a new job, byte for byte as Go's `encoding/json` writes
/// go-workers' `EnqueueData` (spec §10): `queue, class, args, jid, enqueued_at`, then
/// `retry` and `retry_max` (left out when false / 0, Go's `omitempty`), `retry_options`
/// and `connection_options`. `retry_count` and `at` are zero for a new job, so absent.
///
/// # Errors
/// When a value cannot be written as JSON.
pub fn encode_new_job(
    jid: &str,
    enqueued_at: f64,
    route: &str,
    metadata: &Map<String, Value>,
    arg: &Value,
    reply: &Value,
    retry: &RetryPolicy,
) -> Result<Vec<u8>, serde_json::Error> {
    let job = NewJob {
        queue: RPC_QUEUE,
        class: "",
        args: RpcArgs { route, metadata, arg, reply },
        jid,
        enqueued_at,
        retry: retry.enabled,
        retry_max: retry.max,
        retry_options: RetryOptionsJson {
            exp: retry.exponential,
            min_delay: retry.min_delay,
            max_delay: retry.max_delay,
            max_rand: retry.max_random,
        },
        connection_options: ConnectionOptionsJson::default(),
    };
    pitaya_serialize::gojson::to_vec(&job)
}

/// 24 lower-case hex characters of 12 random bytes, as go-workers' `generateJid`.
pub fn new_jid() -> String {
    let mut jid = String::with_capacity(24);
    let bytes = pitaya_core::context::random_u64().to_le_bytes().into_iter().chain(
        u32::try_from(pitaya_core::context::random_u64() >> 32).unwrap_or_default().to_le_bytes(),
    );
    for b in bytes {
        let _ = write!(jid, "{b:02x}");
    }
    jid
}

#[derive(Serialize)]
struct NewJob<'a> {
    queue: &'a str,
    class: &'a str,
    args: RpcArgs<'a>,
    jid: &'a str,
    enqueued_at: f64,
    #[serde(skip_serializing_if = "is_false")]
    retry: bool,
    #[serde(skip_serializing_if = "is_zero")]
    retry_max: u32,
    retry_options: RetryOptionsJson,
    connection_options: ConnectionOptionsJson,
}

/// Pitaya's `rpcInfo`: Go field names, no json tags.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RpcArgs<'a> {
    route: &'a str,
    metadata: &'a Map<String, Value>,
    arg: &'a Value,
    reply: &'a Value,
}

#[derive(Serialize)]
struct RetryOptionsJson {
    exp: u32,
    min_delay: u32,
    max_delay: u32,
    max_rand: u32,
}

/// go-workers v1.2.1's `ConnectionOptions`, always empty for Pitaya's jobs.
#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ConnectionOptionsJson {
    address: &'static str,
    password: &'static str,
    database: &'static str,
    #[serde(rename = "ProcessID")]
    process_id: &'static str,
    namespace: &'static str,
    pool_size: u32,
    pool_interval: u32,
    dial_options: Option<()>,
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if signature")]
fn is_false(b: &bool) -> bool {
    !*b
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if signature")]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A job read from Redis: the exact bytes (needed to remove it from the in-progress
/// list, `LREM` compares bytes) and its parsed fields.
#[derive(Debug, Clone)]
pub struct Job {
    raw: String,
    fields: Map<String, Value>,
}

/// The decoded `args` of an RPC job.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcCall {
    /// `Route`
    pub route: String,
    /// `Metadata` (`null` reads as empty).
    pub metadata: Map<String, Value>,
    /// `Arg`: Go `encoding/json` of the argument message.
    pub arg: Value,
    /// `Reply`: Go `encoding/json` of the reply message (a template; Pitaya sends `{}`).
    pub reply: Value,
}

impl Job {
    /// Parses a job.
    ///
    /// # Errors
    /// When `raw` is not a JSON object.
    pub fn parse(raw: String) -> Result<Self, String> {
        match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(fields)) => Ok(Self { raw, fields }),
            Ok(_) => Err("job is not a JSON object".to_owned()),
            Err(e) => Err(format!("job is not JSON: {e}")),
        }
    }

    /// The bytes the job was read from.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// `jid`, or `""`.
    pub fn jid(&self) -> &str {
        self.fields.get("jid").and_then(Value::as_str).unwrap_or_default()
    }

    /// `queue`, without namespace prefix `prefix`; `rpc` when absent.
    pub fn queue(&self, prefix: &str) -> String {
        let queue = self.fields.get("queue").and_then(Value::as_str).unwrap_or(RPC_QUEUE);
        queue.strip_prefix(prefix).unwrap_or(queue).to_owned()
    }

    /// `retry_count`, `None` when absent (the job never failed).
    pub fn retry_count(&self) -> Option<u64> {
        self.fields.get("retry_count").and_then(as_u64)
    }

    /// How many retries the job allows, or `None` when it is not retried: `retry: true`
    /// gives `retry_max` (25 when absent or 0), `retry: N` gives N, anything else none.
    pub fn retry_limit(&self) -> Option<u64> {
        match self.fields.get("retry") {
            Some(Value::Bool(true)) => {
                Some(self.fields.get("retry_max").and_then(as_u64).filter(|&m| m > 0).unwrap_or(25))
            }
            Some(n @ Value::Number(_)) => as_u64(n),
            _ => None,
        }
    }

    /// `retry_options`, with library defaults for what is absent.
    pub fn retry_options(&self) -> RetryOptions {
        let opts = self.fields.get("retry_options").and_then(Value::as_object);
        let get = |k: &str| opts.and_then(|o| o.get(k)).and_then(as_u64);
        RetryOptions {
            exp: get("exp").unwrap_or(4),
            min_delay: get("min_delay").unwrap_or(15),
            max_delay: get("max_delay").filter(|&m| m > 0),
            max_rand: get("max_rand").unwrap_or(30),
        }
    }

    /// Decodes `args` as Pitaya's `rpcInfo`.
    ///
    /// # Errors
    /// When `args` is not an object with a string `Route`.
    pub fn rpc_call(&self) -> Result<RpcCall, String> {
        let args =
            self.fields.get("args").and_then(Value::as_object).ok_or("job has no args object")?;
        let route = args
            .get("Route")
            .and_then(Value::as_str)
            .ok_or("job args have no string Route")?
            .to_owned();
        let metadata = match args.get("Metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err("job args Metadata is not an object".to_owned()),
        };
        let arg = args.get("Arg").cloned().unwrap_or(Value::Null);
        let reply = args.get("Reply").cloned().unwrap_or(Value::Null);
        Ok(RpcCall { route, metadata, arg, reply })
    }

    /// Marks a failure as go-workers' retry middleware does (spec §10): `queue`,
    /// `error_message`, `error_class`, then `retry_count` 0 and `failed_at` the first
    /// time, `retry_count + 1` and `retried_at` later. Returns the new `retry_count`.
    pub fn mark_failed(&mut self, queue: &str, error: &str, now: f64) -> u64 {
        self.fields.insert("queue".into(), Value::from(queue));
        self.fields.insert("error_message".into(), Value::from(error));
        self.fields.insert("error_class".into(), Value::from(""));
        let count = match self.retry_count() {
            None => {
                self.fields.insert("failed_at".into(), Value::from(crate::clock::timestamp(now)));
                0
            }
            Some(c) => {
                self.fields.insert("retried_at".into(), Value::from(crate::clock::timestamp(now)));
                c.saturating_add(1)
            }
        };
        self.fields.insert("retry_count".into(), Value::from(count));
        count
    }

    /// Sets `enqueued_at`, as the poller does when it moves a job back to its queue.
    pub fn set_enqueued_at(&mut self, now: f64) {
        self.fields.insert("enqueued_at".into(), Value::from(now));
    }

    /// The job's current fields as JSON. Keys come out sorted, as Go re-encodes a job
    /// it holds as a map.
    ///
    /// # Errors
    /// Never in practice (the fields came from JSON).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        pitaya_serialize::gojson::to_vec(&self.fields)
    }
}

/// A non-negative integer, also from a float with no fraction (Go may write `2` as `2`
/// or, through `interface{}` round trips, keep it as a float).
fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        let f = v.as_f64()?;
        // Only whole, in-range floats convert; the cast is exact for those.
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "checked")]
        (f.fract() == 0.0 && (0.0..1.8e19).contains(&f)).then_some(f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_job_layout_matches_go() {
        let mut meta = Map::new();
        meta.insert("uid".into(), Value::from("u1"));
        let arg = serde_json::json!({"msg": "hi"});
        let bytes = encode_new_job(
            "0123456789abcdef01234567",
            1_718_000_000.123_456,
            "room.room.join",
            &meta,
            &arg,
            &serde_json::json!({}),
            &RetryPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            concat!(
                r#"{"queue":"rpc","class":"","args":{"Route":"room.room.join","Metadata":{"uid":"u1"},"#,
                r#""Arg":{"msg":"hi"},"Reply":{}},"jid":"0123456789abcdef01234567","#,
                r#""enqueued_at":1718000000.123456,"retry":true,"retry_max":2,"#,
                r#""retry_options":{"exp":5,"min_delay":10,"max_delay":10,"max_rand":0},"#,
                r#""connection_options":{"Address":"","Password":"","Database":"","ProcessID":"","#,
                r#""Namespace":"","PoolSize":0,"PoolInterval":0,"DialOptions":null}}"#
            )
        );
    }

    #[test]
    fn retry_off_and_zero_max_are_omitted() {
        let policy = RetryPolicy { enabled: false, max: 0, ..RetryPolicy::default() };
        let bytes =
            encode_new_job("j", 1.5, "a.b.c", &Map::new(), &Value::Null, &Value::Null, &policy)
                .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("\"retry\""), "{text}");
        assert!(!text.contains("retry_max"), "{text}");
        assert!(text.contains(r#""enqueued_at":1.5,"retry_options""#), "{text}");
    }

    #[test]
    fn jid_is_24_hex() {
        let a = new_jid();
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(a, new_jid());
    }

    #[test]
    fn retry_rules_follow_go_workers() {
        let job = |s: &str| Job::parse(s.to_owned()).unwrap();
        assert_eq!(job(r#"{"jid":"2"}"#).retry_limit(), None);
        assert_eq!(job(r#"{"retry":false}"#).retry_limit(), None);
        assert_eq!(job(r#"{"retry":true}"#).retry_limit(), Some(25));
        assert_eq!(job(r#"{"retry":true,"retry_max":3}"#).retry_limit(), Some(3));
        assert_eq!(job(r#"{"retry":5}"#).retry_limit(), Some(5));
        let opts =
            job(r#"{"retry_options":{"exp":2,"min_delay":1200,"max_rand":0}}"#).retry_options();
        assert_eq!(opts.delay(0, 0), 1200);
        let opts = job(r#"{"retry_options":{"exp":2,"min_delay":0,"max_rand":0}}"#).retry_options();
        assert_eq!(opts.delay(3, 0), 9);
        let opts =
            job(r#"{"retry_options":{"exp":20,"min_delay":600,"max_delay":10}}"#).retry_options();
        assert_eq!(opts.delay(u64::MAX, u64::MAX), 10);
        assert_eq!(
            job("{}").retry_options(),
            RetryOptions { exp: 4, min_delay: 15, max_delay: None, max_rand: 30 }
        );
    }

    #[test]
    fn mark_failed_counts_from_zero() {
        let mut j = Job::parse(r#"{"jid":"2","retry":true}"#.to_owned()).unwrap();
        assert_eq!(j.mark_failed("rpc", "boom", 1_374_328_999.0), 0);
        assert_eq!(j.mark_failed("rpc", "boom", 1_374_328_999.0), 1);
        let text = String::from_utf8(j.to_json().unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"error_class":"","error_message":"boom","failed_at":"2013-07-20 14:03:19 UTC","jid":"2","queue":"rpc","retried_at":"2013-07-20 14:03:19 UTC","retry":true,"retry_count":1}"#
        );
    }

    #[test]
    fn bad_jobs_are_errors() {
        assert!(Job::parse("nope".into()).is_err());
        assert!(Job::parse("[1]".into()).is_err());
        let j = Job::parse(r#"{"args":{"Route":3}}"#.into()).unwrap();
        assert!(j.rpc_call().is_err());
        let j = Job::parse(r#"{"args":{"Route":"a.b.c","Metadata":null}}"#.into()).unwrap();
        assert_eq!(j.rpc_call().unwrap().metadata, Map::new());
    }
}
