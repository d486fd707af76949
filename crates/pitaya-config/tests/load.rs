//! Loading end to end: Go's defaults (spec §13.2), files, `PITAYA_*` variables, overrides and
//! their precedence. Every test that reads the environment runs in a `figment::Jail`, which
//! serializes those tests and restores the variables afterwards.
#![expect(clippy::result_large_err, reason = "figment::Jail closures must return figment::Error")]

use std::path::Path;
use std::time::Duration;

use figment::Jail;
use pitaya_config::{ConfigError, ConfigLoader, PitayaConfig, SerializerType};

type JailResult = figment::error::Result<()>;

/// Turns our error into the jail's, keeping the message.
fn jailed<T>(result: Result<T, ConfigError>) -> figment::error::Result<T> {
    result.map_err(|e| figment::Error::from(e.to_string()))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn defaults_match_go_code() {
    let c = PitayaConfig::default();
    assert_eq!(c.serializer_type, SerializerType::Json);
    assert_eq!(c.heartbeat.interval, secs(30));
    assert!(c.handler.messages.compression);
    assert!(!c.handler.messages.compress_routes.only_if_client_does, "off: Go's bytes");
    assert_eq!(c.buffer.agent.messages, 100);
    assert_eq!(c.buffer.agent.conn_timeout, secs(10));
    assert_eq!((c.buffer.handler.local_process, c.buffer.handler.remote_process), (20, 20));
    assert_eq!(c.concurrency.handler.dispatch, 25);
    assert!(c.session.unique);
    assert!(!c.session.drain.enabled);
    assert_eq!(c.session.drain.timeout, secs(6 * 3600));
    assert_eq!(c.session.drain.period, secs(5));
    assert!(!c.session.resume.enabled);
    assert_eq!(c.session.resume.ttl, secs(30));
    assert_eq!(c.session.resume.buffer, 256);
    assert_eq!(c.session.resume.buffer_bytes, 1 << 20);
    assert!(!c.acceptor.proxy_protocol);
    let rl = &c.conn.rate_limiting;
    assert_eq!((rl.limit, rl.interval, rl.force_disable), (20, secs(1), false));
    assert!(!c.default_pipelines.struct_validation.enabled);
    assert_eq!(c.cluster.info.region, "");

    let sd = &c.cluster.sd.etcd;
    assert_eq!(sd.endpoints, ["localhost:2379"]);
    assert_eq!((sd.user.as_str(), sd.pass.as_str()), ("", ""));
    assert_eq!(sd.dial_timeout, secs(5));
    assert_eq!(sd.prefix, "pitaya/");
    assert_eq!((sd.heartbeat.ttl, sd.heartbeat.log), (secs(60), false));
    assert_eq!((sd.sync_servers.interval, sd.sync_servers.parallelism), (secs(120), 10));
    assert_eq!(sd.revoke.timeout, secs(5));
    assert_eq!(sd.grant_lease.timeout, secs(60));
    assert_eq!(sd.grant_lease.max_retries, 15);
    assert_eq!(sd.grant_lease.retry_interval, secs(5));
    assert_eq!(sd.shutdown.delay, Duration::from_millis(300));
    assert!(sd.server_types_blacklist.is_empty());

    let nc = &c.cluster.rpc.client.nats;
    assert_eq!(nc.connect, "nats://localhost:4222");
    assert_eq!(nc.request_timeout, secs(5));
    assert_eq!(nc.connection_timeout, secs(2));
    assert_eq!(nc.max_reconnection_retries, 15);
    assert!(nc.websocket_compression);
    assert_eq!(nc.reconnect_jitter, Duration::from_millis(100));
    assert_eq!((nc.reconnect_jitter_tls, nc.reconnect_wait), (secs(1), secs(1)));
    assert_eq!((nc.ping_interval, nc.max_pings_outstanding), (secs(120), 3));

    let ns = &c.cluster.rpc.server.nats;
    assert_eq!(ns.connect, "nats://localhost:4222");
    assert_eq!(ns.connection_timeout, secs(2));
    assert_eq!(ns.max_reconnection_retries, 15);
    assert_eq!(ns.services, 30);
    assert_eq!((ns.buffer.messages.get(), ns.buffer.push.get()), (75, 100));
    assert_eq!((ns.ping_interval, ns.max_pings_outstanding), (secs(120), 3));
    assert!(!c.cluster.rpc.server.loopback_enabled);

    let gc = &c.cluster.rpc.client.grpc;
    assert_eq!(
        (gc.dial_timeout, gc.request_timeout, gc.lazy_connection),
        (secs(5), secs(5), false)
    );
    assert_eq!(c.cluster.rpc.server.grpc.port, 3434);

    let ge = &c.groups.etcd;
    assert_eq!(ge.endpoints, ["localhost:2379"]);
    assert_eq!(ge.prefix, "pitaya/");
    assert_eq!((ge.dial_timeout, ge.transaction_timeout), (secs(5), secs(5)));
    assert_eq!(c.groups.memory.tick_duration, secs(30));

    let bs = &c.modules.binding_storage.etcd;
    assert_eq!(bs.endpoints, ["localhost:2379"]);
    assert_eq!(bs.prefix, "pitaya/");
    assert_eq!(bs.dial_timeout, secs(5));
    assert_eq!(bs.lease_ttl, secs(5 * 3600));

    let m = &c.metrics;
    assert_eq!(m.period, secs(15));
    assert_eq!(m.game, "");
    assert!(m.const_labels.is_empty() && m.additional_labels.is_empty());
    assert!(m.custom.summaries.is_empty() && m.custom.gauges.is_empty());
    assert!(m.custom.counters.is_empty() && m.custom.histograms.is_empty());
    assert_eq!((m.prometheus.enabled, m.prometheus.port), (false, 9090));
    assert!(!m.statsd.enabled);
    assert_eq!(m.statsd.host, "localhost:9125");
    assert_eq!(m.statsd.prefix, "pitaya.");
    assert_eq!(m.statsd.rate, 1.0);

    let w = &c.worker;
    assert_eq!(w.redis.server_url, "localhost:6379");
    assert_eq!(w.redis.pool, 10);
    assert_eq!(w.redis.password, "");
    assert_eq!((w.namespace.as_str(), w.concurrency), ("", 1));
    let r = &w.retry;
    assert!(r.enabled);
    assert_eq!((r.max, r.exponential, r.min_delay, r.max_delay, r.max_random), (2, 5, 10, 10, 0));
}

#[test]
fn load_without_sources_gives_defaults() {
    Jail::expect_with(|_| -> JailResult {
        assert_eq!(jailed(PitayaConfig::load(None))?, PitayaConfig::default());
        Ok(())
    });
}

#[test]
fn env_overrides_typed_keys() {
    Jail::expect_with(|jail| -> JailResult {
        jail.set_env("PITAYA_HEARTBEAT_INTERVAL", "10s");
        jail.set_env("PITAYA_BUFFER_AGENT_CONNTIMEOUT", "2s");
        jail.set_env("PITAYA_CLUSTER_RPC_CLIENT_NATS_REQUESTTIMEOUT", "1s");
        jail.set_env("PITAYA_METRICS_PROMETHEUS_ENABLED", "true");
        jail.set_env("PITAYA_METRICS_PROMETHEUS_PORT", "9191");
        jail.set_env("PITAYA_METRICS_STATSD_RATE", "0.5");
        jail.set_env("PITAYA_SERIALIZERTYPE", "protobuf");
        jail.set_env("PITAYA_WORKER_RETRY_MINDELAY", "3");
        jail.set_env("PITAYA_WORKER_REDIS_POOL", "20");
        jail.set_env("PITAYA_WORKER_REDIS_PASSWORD", "007");
        jail.set_env("PITAYA_CLUSTER_SD_ETCD_HEARTBEAT_TTL", "30s");
        jail.set_env("PITAYA_MODULES_BINDINGSTORAGE_ETCD_LEASETTL", "2h");
        jail.set_env("PITAYA_SESSION_UNIQUE", "FALSE");
        jail.set_env("PITAYA_SESSION_RESUME_ENABLED", "true");
        jail.set_env("PITAYA_SESSION_RESUME_TTL", "90s");
        jail.set_env("PITAYA_SESSION_RESUME_BUFFER", "16");
        jail.set_env("PITAYA_SESSION_RESUME_BUFFERBYTES", "4096");
        jail.set_env("PITAYA_METRICS_CONSTLABELS", r#"{"region":"us","shard":"7"}"#);
        // Not Pitaya's prefix, so ignored.
        jail.set_env("pitaya_heartbeat_interval", "99s");

        let c = jailed(PitayaConfig::load(None))?;
        assert_eq!(c.heartbeat.interval, secs(10));
        assert_eq!(c.buffer.agent.conn_timeout, secs(2));
        assert_eq!(c.cluster.rpc.client.nats.request_timeout, secs(1));
        assert!(c.metrics.prometheus.enabled);
        assert_eq!(c.metrics.prometheus.port, 9191);
        assert_eq!(c.metrics.statsd.rate, 0.5);
        assert_eq!(c.serializer_type, SerializerType::Protobuf);
        assert_eq!(c.worker.retry.min_delay, 3);
        assert_eq!(c.worker.redis.pool, 20);
        assert_eq!(c.worker.redis.password, "007", "env strings are not parsed as numbers");
        assert_eq!(c.cluster.sd.etcd.heartbeat.ttl, secs(30));
        assert_eq!(c.modules.binding_storage.etcd.lease_ttl, secs(7200));
        assert!(!c.session.unique);
        assert!(c.session.resume.enabled);
        assert_eq!(c.session.resume.ttl, secs(90));
        assert_eq!(c.session.resume.buffer, 16);
        assert_eq!(c.session.resume.buffer_bytes, 4096);
        assert_eq!(c.metrics.const_labels.get("shard").map(String::as_str), Some("7"));
        // Untouched keys keep Go's defaults.
        assert_eq!(c.cluster.rpc.client.nats.connection_timeout, secs(2));
        Ok(())
    });
}

/// Batched pushes are on unless `pitaya.cluster.rpc.client.pushbatch` says otherwise.
#[test]
fn push_batch_key_defaults_on_and_reads_from_env() {
    Jail::expect_with(|jail| -> JailResult {
        assert!(jailed(PitayaConfig::load(None))?.cluster.rpc.client.push_batch);
        jail.set_env("PITAYA_CLUSTER_RPC_CLIENT_PUSHBATCH", "false");
        let c = jailed(PitayaConfig::load(None))?;
        assert!(!c.cluster.rpc.client.push_batch);
        assert!(c.to_string().contains("pitaya.cluster.rpc.client.pushbatch = false\n"));
        Ok(())
    });
}

/// A key of this port only (not Go's), read the same way as Go's keys.
#[test]
fn route_compression_key_reads_from_env_file_and_overrides() {
    Jail::expect_with(|jail| -> JailResult {
        jail.set_env("PITAYA_HANDLER_MESSAGES_COMPRESSROUTES_ONLYIFCLIENTDOES", "true");
        let c = jailed(PitayaConfig::load(None))?;
        assert!(c.handler.messages.compress_routes.only_if_client_does);
        // Its sibling keeps Go's default.
        assert!(c.handler.messages.compression);
        jail.clear_env();

        jail.create_file(
            "routes.toml",
            "[pitaya.handler.messages.compressRoutes]\nonlyIfClientDoes = true\n",
        )?;
        let c = jailed(PitayaConfig::load(Some(Path::new("routes.toml"))))?;
        assert!(c.handler.messages.compress_routes.only_if_client_does, "keys fold case");

        let c = jailed(
            ConfigLoader::new()
                .set("pitaya.handler.messages.compressroutes.onlyifclientdoes", true)
                .load(),
        )?;
        assert!(c.handler.messages.compress_routes.only_if_client_does);
        let dump = c.to_string();
        assert!(
            dump.contains("pitaya.handler.messages.compressroutes.onlyifclientdoes = true\n"),
            "{dump}"
        );
        Ok(())
    });
}

#[test]
fn env_lists_split_on_commas() {
    Jail::expect_with(|jail| -> JailResult {
        jail.set_env("PITAYA_CLUSTER_SD_ETCD_ENDPOINTS", "etcd-a:2379,etcd-b:2379");
        jail.set_env("PITAYA_CLUSTER_SD_ETCD_SERVERTYPESBLACKLIST", "metagame, chat");
        let c = jailed(PitayaConfig::load(None))?;
        assert_eq!(c.cluster.sd.etcd.endpoints, ["etcd-a:2379", "etcd-b:2379"]);
        assert_eq!(c.cluster.sd.etcd.server_types_blacklist, ["metagame", "chat"]);
        Ok(())
    });
}

#[test]
fn unitless_env_durations_are_nanoseconds_as_in_viper() {
    Jail::expect_with(|jail| -> JailResult {
        jail.set_env("PITAYA_HEARTBEAT_INTERVAL", "1500");
        let c = jailed(PitayaConfig::load(None))?;
        assert_eq!(c.heartbeat.interval, Duration::from_nanos(1500));
        Ok(())
    });
}

const TOML: &str = r#"
[pitaya]
serializertype = 2

[pitaya.heartbeat]
interval = "45s"

[pitaya.cluster.sd.etcd]
endpoints = "etcd-1:2379,etcd-2:2379"
servertypesblacklist = ["chat"]

[pitaya.cluster.rpc.server.nats.buffer]
messages = 500

[pitaya.metrics.constLabels]
region = "eu"
Zone = "b"

[pitaya.metrics.additionallabels]
tenant = "none"

[[pitaya.metrics.custom.summaries]]
subsystem = "room"
name = "my_summary"
help = "a summary"
labels = ["tag1"]
objectives = { "0.7" = 0.05, "0.99" = 0.001, "0.9" = 0.01 }

[[pitaya.metrics.custom.counters]]
subsystem = "room"
name = "my_counter"
help = "a counter"
labels = ["tag1", "tag2"]

[[pitaya.metrics.custom.histograms]]
subsystem = "room"
name = "my_histogram"
help = "a histogram"
buckets = [0.1, 1, 10]

[pitaya.worker.retry]
maxRandom = 4

[app]
name = "kept for the app"
"#;

#[test]
fn toml_file_overrides_defaults() {
    Jail::expect_with(|jail| -> JailResult {
        jail.create_file("config.toml", TOML)?;
        let c = jailed(PitayaConfig::load(Some(Path::new("config.toml"))))?;
        assert_eq!(c.serializer_type, SerializerType::Protobuf);
        assert_eq!(c.heartbeat.interval, secs(45));
        assert_eq!(c.cluster.sd.etcd.endpoints, ["etcd-1:2379", "etcd-2:2379"]);
        assert_eq!(c.cluster.sd.etcd.server_types_blacklist, ["chat"]);
        assert_eq!(c.cluster.rpc.server.nats.buffer.messages.get(), 500);
        assert_eq!(c.cluster.rpc.server.nats.buffer.push.get(), 100);
        assert_eq!(c.metrics.const_labels.get("region").map(String::as_str), Some("eu"));
        assert_eq!(
            c.metrics.const_labels.get("Zone").map(String::as_str),
            Some("b"),
            "label case kept"
        );
        assert_eq!(c.metrics.additional_labels.get("tenant").map(String::as_str), Some("none"));
        assert_eq!(c.worker.retry.max_random, 4);

        let summary = c.metrics.custom.summaries.first().expect("one summary");
        assert_eq!((summary.subsystem.as_str(), summary.name.as_str()), ("room", "my_summary"));
        assert_eq!(summary.labels, ["tag1"]);
        let quantiles: Vec<(f64, f64)> =
            summary.objectives.iter().map(|o| (o.quantile, o.error)).collect();
        assert_eq!(quantiles, [(0.7, 0.05), (0.9, 0.01), (0.99, 0.001)]);
        let counter = c.metrics.custom.counters.first().expect("one counter");
        assert_eq!(counter.labels, ["tag1", "tag2"]);
        let histogram = c.metrics.custom.histograms.first().expect("one histogram");
        assert_eq!(histogram.buckets, [0.1, 1.0, 10.0]);
        Ok(())
    });
}

#[test]
fn json_file_overrides_defaults() {
    Jail::expect_with(|jail| -> JailResult {
        jail.create_file(
            "config.json",
            r#"{"pitaya": {"heartbeat": {"interval": "1m30s"},
                          "metrics": {"constlabels": {"region": "sa"}, "statsd": {"rate": 1}},
                          "worker": {"redis": {"pool": "15"}}}}"#,
        )?;
        let c = jailed(PitayaConfig::load(Some(Path::new("config.json"))))?;
        assert_eq!(c.heartbeat.interval, secs(90));
        assert_eq!(c.metrics.const_labels.get("region").map(String::as_str), Some("sa"));
        assert_eq!(c.metrics.statsd.rate, 1.0);
        assert_eq!(c.worker.redis.pool, 15);
        Ok(())
    });
}

#[test]
fn precedence_is_defaults_file_env_overrides() {
    Jail::expect_with(|jail| -> JailResult {
        jail.create_file(
            "config.toml",
            r#"
            [pitaya.heartbeat]
            interval = "11s"
            [pitaya.buffer.agent]
            messages = 200
            conntimeout = "3s"
            [pitaya.metrics.constLabels]
            fromfile = "yes"
            "#,
        )?;
        jail.set_env("PITAYA_BUFFER_AGENT_MESSAGES", "300");
        jail.set_env("PITAYA_BUFFER_AGENT_CONNTIMEOUT", "4s");
        jail.set_env("PITAYA_METRICS_CONSTLABELS_FROMENV", "yes");

        let c = jailed(
            ConfigLoader::standard(Some(Path::new("config.toml")))
                .map(|l| l.set("pitaya.buffer.agent.conntimeout", "5s"))
                .and_then(|l| l.load()),
        )?;
        assert_eq!(c.heartbeat.interval, secs(11), "file beats defaults");
        assert_eq!(c.buffer.agent.messages, 300, "env beats file");
        assert_eq!(c.buffer.agent.conn_timeout, secs(5), "override beats env");
        assert_eq!(c.buffer.handler.local_process, 20, "defaults fill the rest");
        // Maps merge across layers whatever the spelling of their key.
        assert_eq!(c.metrics.const_labels.get("fromfile").map(String::as_str), Some("yes"));
        assert_eq!(c.metrics.const_labels.get("fromenv").map(String::as_str), Some("yes"));
        Ok(())
    });
}

#[test]
fn apps_can_read_their_own_keys_from_the_same_figment() {
    Jail::expect_with(|jail| -> JailResult {
        jail.create_file("config.toml", TOML)?;
        let loader = jailed(ConfigLoader::standard(Some(Path::new("config.toml"))))?;
        let name: String = loader.figment().extract_inner("app.name")?;
        assert_eq!(name, "kept for the app");
        let interval: String = loader.figment().extract_inner("pitaya.heartbeat.interval")?;
        assert_eq!(interval, "45s");
        Ok(())
    });
}

#[test]
fn bad_env_value_names_key_value_and_variable() {
    Jail::expect_with(|jail| -> JailResult {
        jail.set_env("PITAYA_HEARTBEAT_INTERVAL", "abc");
        let err = PitayaConfig::load(None).expect_err("abc is no duration");
        let ConfigError::InvalidValue { key, value, origin, reason } = &err else {
            return Err(format!("unexpected error {err:?}").into());
        };
        assert_eq!(key, "pitaya.heartbeat.interval");
        assert_eq!(value, "\"abc\"");
        assert_eq!(origin.as_deref(), Some("environment variable PITAYA_HEARTBEAT_INTERVAL"));
        assert_eq!(reason, "time: invalid duration \"abcns\"");
        let text = err.to_string();
        assert!(text.contains("pitaya.heartbeat.interval") && text.contains("abc"), "{text}");
        Ok(())
    });
}

#[test]
fn bad_file_values_name_key_and_file() {
    Jail::expect_with(|jail| -> JailResult {
        jail.create_file("port.toml", "[pitaya.metrics.prometheus]\nport = 70000\n")?;
        let err = PitayaConfig::load(Some(Path::new("port.toml"))).expect_err("port out of range");
        let text = err.to_string();
        assert!(text.contains("pitaya.metrics.prometheus.port"), "{text}");
        assert!(text.contains("70000") && text.contains("port.toml"), "{text}");

        jail.create_file("zero.toml", "[pitaya.cluster.rpc.server.nats.buffer]\npush = 0\n")?;
        let err = PitayaConfig::load(Some(Path::new("zero.toml"))).expect_err("0 is rejected");
        assert!(err.to_string().contains("pitaya.cluster.rpc.server.nats.buffer.push"), "{err}");

        jail.create_file("ser.toml", "[pitaya]\nserializertype = 3\n")?;
        let err = PitayaConfig::load(Some(Path::new("ser.toml"))).expect_err("3 is unknown");
        assert!(err.to_string().contains("pitaya.serializertype"), "{err}");

        jail.create_file("neg.toml", "[pitaya.session.drain]\ntimeout = \"-1s\"\n")?;
        let err = PitayaConfig::load(Some(Path::new("neg.toml"))).expect_err("negative");
        assert!(err.to_string().contains("pitaya.session.drain.timeout"), "{err}");
        Ok(())
    });
}

#[test]
fn malformed_and_unsupported_files_are_reported() {
    Jail::expect_with(|jail| -> JailResult {
        jail.create_file("broken.toml", "[pitaya\nheartbeat = ")?;
        let err = PitayaConfig::load(Some(Path::new("broken.toml"))).expect_err("bad toml");
        assert!(matches!(err, ConfigError::Source { .. }), "{err:?}");
        assert!(err.to_string().contains("broken.toml"), "{err}");

        jail.create_file("config.yaml", "pitaya: {}\n")?;
        let err = PitayaConfig::load(Some(Path::new("config.yaml"))).expect_err("yaml");
        assert!(matches!(err, ConfigError::UnsupportedFormat { .. }), "{err:?}");
        Ok(())
    });
}

#[test]
fn dotted_dump_shows_what_is_in_force() {
    Jail::expect_with(|jail| -> JailResult {
        jail.set_env("PITAYA_CLUSTER_RPC_CLIENT_NATS_REQUESTTIMEOUT", "1500ms");
        let c = jailed(PitayaConfig::load(None))?;
        let text = c.to_string();
        assert!(text.contains("pitaya.heartbeat.interval = 30s\n"), "{text}");
        assert!(text.contains("pitaya.cluster.rpc.client.nats.requesttimeout = 1.5s\n"), "{text}");
        assert!(text.contains("pitaya.metrics.statsd.rate = 1.0\n"), "{text}");
        Ok(())
    });
}

#[test]
fn dotted_dump_loads_back_to_the_same_config() {
    Jail::expect_with(|jail| -> JailResult {
        jail.create_file("config.toml", TOML)?;
        let original = jailed(PitayaConfig::load(Some(Path::new("config.toml"))))?;
        // Feed every scalar line back as an override, the way an operator would copy it.
        let mut loader = ConfigLoader::new();
        for (key, value) in original.to_dotted() {
            let parsed: serde_json::Value =
                serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value));
            loader = loader.set(&key, parsed);
        }
        assert_eq!(jailed(loader.load())?, original);
        Ok(())
    });
}
