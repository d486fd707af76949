//! The job JSON of spec §10, written field for field as go-workers writes it, and read
//! back leniently (any key order, `retry` as a bool or a number).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::keys::RPC_QUEUE;

/// Retries a job with `retry: true` and no integer `retry_max` allows (go-workers'
/// `DEFAULT_MAX_RETRY`).
pub const DEFAULT_RETRY_MAX: i64 = 25;

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
    /// `retry_options.max_delay`, seconds: the upper bound of the delay. 0 retries at
    /// the next poll, as in go-workers (it is a bound, not "unbounded").
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
/// (exp 4, min 15, max none, rand 30). See [`Job::retry_options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOptions {
    /// `exp`
    pub exp: u64,
    /// `min_delay`, seconds.
    pub min_delay: u64,
    /// `max_delay`, seconds; `None` (absent) means no upper bound, `Some(0)` no delay.
    pub max_delay: Option<u64>,
    /// `max_rand`, seconds.
    pub max_rand: u64,
}

impl RetryOptions {
    /// Seconds until retry number `count` (the job's `retry_count` after this failure):
    /// `min(count^exp + min_delay + rand*(count+1), max_delay)` where `rand` is drawn by
    /// the caller from `0..max_rand`; a negative `count` counts as 0.
    ///
    /// Saturates instead of overflowing. Go's conversions of this number to `int` and
    /// then to a `time.Duration` wrap past about 292 years, which schedules such a
    /// retry at an arbitrary time, often at once; saturating keeps it "very late".
    pub fn delay(&self, count: i64, rand: u64) -> u64 {
        let count = u64::try_from(count).unwrap_or(0);
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

    /// `retry_count`, `None` when absent (the job never failed) or not an integer.
    ///
    /// Integers are read as go-workers reads them (`json.Number.Int64`): a JSON number
    /// without fraction or exponent that fits an `i64`; `2.0` is not one.
    pub fn retry_count(&self) -> Option<i64> {
        self.fields.get("retry_count").and_then(Value::as_i64)
    }

    /// How many retries the job allows, or `None` when it is not retried at all, by
    /// go-workers v1.2.1's rules: `retry: true` allows 25, `retry: N` (an integer, the
    /// Sidekiq form) allows N, anything else (absent, `false`, a string) none; then an
    /// integer `retry_max` replaces the number whenever retry is on, `0` and negative
    /// values included (so `retry: 5, retry_max: 2` allows 2 and `retry_max: 0` none).
    ///
    /// Pitaya's enqueue leaves `retry_max` out when it is 0 (`omitempty`), so a policy
    /// with `max: 0` is read back as 25 retries, by Go's workers and ours alike.
    pub fn retry_limit(&self) -> Option<i64> {
        let default = match self.fields.get("retry") {
            Some(Value::Bool(true)) => DEFAULT_RETRY_MAX,
            Some(n @ Value::Number(_)) => n.as_i64()?,
            _ => return None,
        };
        Some(self.fields.get("retry_max").and_then(Value::as_i64).unwrap_or(default))
    }

    /// Whether a failure now is retried: the job allows retries and its `retry_count`
    /// (0 when absent) is below the limit of [`retry_limit`](Self::retry_limit).
    pub fn retries_left(&self) -> bool {
        self.retry_limit().is_some_and(|limit| self.retry_count().unwrap_or(0) < limit)
    }

    /// `retry_options`, with go-workers' library defaults for what is absent or not a
    /// number. A number is read as go-workers reads it (as a float, so `2.0` and `1e1`
    /// count) and then truncated to whole seconds, a negative one counting as 0.
    /// `max_delay: 0` is a bound of 0 s, so the job is due at the next poll: go-workers
    /// takes the minimum with whatever `max_delay` says, and Pitaya always writes it.
    pub fn retry_options(&self) -> RetryOptions {
        let opts = self.fields.get("retry_options").and_then(Value::as_object);
        let get = |k: &str| opts.and_then(|o| o.get(k)).and_then(Value::as_f64).map(whole_secs);
        RetryOptions {
            exp: get("exp").unwrap_or(4),
            min_delay: get("min_delay").unwrap_or(15),
            max_delay: get("max_delay"),
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
    pub fn mark_failed(&mut self, queue: &str, error: &str, now: f64) -> i64 {
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

/// Seconds from a JSON number: truncated, negative and NaN as 0, huge values saturated.
fn whole_secs(f: f64) -> u64 {
    // `as` from float to int truncates toward zero and saturates (NaN gives 0): the
    // behaviour wanted here, not an accident.
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "see above")]
    let secs = f.max(0.0) as u64;
    secs
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
        let limit = |s: &str| job(s).retry_limit();
        assert_eq!(limit(r#"{"jid":"2"}"#), None);
        assert_eq!(limit(r#"{"retry":false}"#), None);
        assert_eq!(limit(r#"{"retry":false,"retry_max":3}"#), None);
        assert_eq!(limit(r#"{"retry":"true"}"#), None);
        assert_eq!(limit(r#"{"retry":true}"#), Some(25));
        assert_eq!(limit(r#"{"retry":true,"retry_max":3}"#), Some(3));
        // An explicit 0 (or less) means no retry; only an absent retry_max gives 25.
        assert_eq!(limit(r#"{"retry":true,"retry_max":0}"#), Some(0));
        assert_eq!(limit(r#"{"retry":true,"retry_max":-1}"#), Some(-1));
        // Not an integer to Go's json.Number.Int64: ignored.
        assert_eq!(limit(r#"{"retry":true,"retry_max":2.0}"#), Some(25));
        assert_eq!(limit(r#"{"retry":5}"#), Some(5));
        // The Sidekiq form turns retry on; retry_max still has the last word.
        assert_eq!(limit(r#"{"retry":5,"retry_max":2}"#), Some(2));
        assert_eq!(limit(r#"{"retry":0,"retry_max":3}"#), Some(3));
        assert_eq!(limit(r#"{"retry":2.5}"#), None);

        assert!(job(r#"{"retry":true}"#).retries_left());
        assert!(!job(r#"{"retry":true,"retry_max":0}"#).retries_left());
        assert!(job(r#"{"retry":true,"retry_max":2,"retry_count":1}"#).retries_left());
        assert!(!job(r#"{"retry":true,"retry_max":2,"retry_count":2}"#).retries_left());
        assert!(!job(r#"{"retry":0}"#).retries_left());
        assert!(!job(r#"{"retry_max":3}"#).retries_left());
    }

    #[test]
    fn delay_follows_go_workers() {
        let job = |s: &str| Job::parse(s.to_owned()).unwrap();
        let opts =
            job(r#"{"retry_options":{"exp":2,"min_delay":1200,"max_rand":0}}"#).retry_options();
        assert_eq!(opts.delay(0, 0), 1200);
        let opts = job(r#"{"retry_options":{"exp":2,"min_delay":0,"max_rand":0}}"#).retry_options();
        assert_eq!(opts.delay(3, 0), 9);
        assert_eq!(opts.delay(-3, 0), 0);
        let opts =
            job(r#"{"retry_options":{"exp":20,"min_delay":600,"max_delay":10}}"#).retry_options();
        assert_eq!(opts.delay(i64::MAX, u64::MAX), 10);
        assert_eq!(
            job("{}").retry_options(),
            RetryOptions { exp: 4, min_delay: 15, max_delay: None, max_rand: 30 }
        );
        // max_delay 0 is a bound of 0: retry at the next poll. Pitaya writes it always.
        let opts = job(r#"{"retry_options":{"exp":5,"min_delay":10,"max_delay":0,"max_rand":0}}"#)
            .retry_options();
        assert_eq!(opts.max_delay, Some(0));
        assert_eq!(opts.delay(3, 0), 0);
        let opts =
            job(r#"{"retry_options":{"exp":2.0,"min_delay":1e1,"max_delay":-5}}"#).retry_options();
        assert_eq!((opts.exp, opts.min_delay, opts.max_delay), (2, 10, Some(0)));
        let opts = job(r#"{"retry_options":{"exp":"2","max_delay":null}}"#).retry_options();
        assert_eq!((opts.exp, opts.max_delay), (4, None));
        // What Pitaya's default policy writes: always 10 s.
        let policy = RetryPolicy::default();
        let bytes =
            encode_new_job("j", 1.0, "a.b.c", &Map::new(), &Value::Null, &Value::Null, &policy)
                .unwrap();
        let opts = Job::parse(String::from_utf8(bytes).unwrap()).unwrap().retry_options();
        assert!((0..4).all(|count| opts.delay(count, 0) == 10));
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
