//! `weir bench --kafka <servers>`: Kafka → Wasm filter-map → Kafka (exactly-once, checkpoints
//! every 1 s, state in sled) beside raw librdkafka consuming and producing the same records with
//! no weir in between, measured in the same run against the same broker.
//!
//! Invariant: both sides move the same records between topics of the same broker; the ratio
//! compares input records per second end to end (the weir side including its checkpoints and
//! its last transaction commit).

use crate::checkpoint::StoreHooks;
use crate::config::PipelineSpec;
use crate::graph::JobGraph;
use crate::metrics::human;
use crate::plugin::PluginHost;
use crate::runtime::{self, RunOptions};
use crate::state::StateStore;
use anyhow::{Context as _, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn bench_kafka(servers: &str, records: u64, value_size: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let [input, raw_out, weir_out] =
        ["in", "raw", "weir"].map(|t| format!("weir-bench-{nonce}-{t}"));
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()?;
    let topics: Vec<NewTopic> = [&input, &raw_out, &weir_out]
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    for r in rt.block_on(admin.create_topics(&topics, &AdminOptions::new()))? {
        r.map_err(|(t, e)| anyhow::anyhow!("cannot create topic {t}: {e}"))?;
    }
    println!(
        "weir bench --kafka {servers}: {records} records ({value_size}-byte values, 8-byte keys), one partition, loopback"
    );
    fill(servers, &input, records, value_size)?;

    let raw = raw_copy(servers, &input, &raw_out, records)?;
    let (weir, checkpoints) = weir_copy(&rt, servers, &input, &weir_out, records)?;
    println!("{:<58} {:>12}", "", "records/s");
    println!(
        "{:<58} {:>12}",
        "raw librdkafka: consume → produce (no weir)",
        human(raw)
    );
    println!(
        "{:<58} {:>12}",
        format!("weir: kafka → wasm filter-map → kafka exactly-once ({checkpoints} ckpts)"),
        human(weir)
    );
    println!("ratio weir / raw: {:.2} (target ≥ 0.70)", weir / raw);
    Ok(())
}

fn producer(servers: &str) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("queue.buffering.max.messages", "1000000")
        .set("linger.ms", "5")
        .create()?)
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &[u8], value: &[u8]) {
    let mut r = BaseRecord::to(topic).key(key).payload(value);
    loop {
        match p.send(r) {
            Ok(()) => return,
            Err((_, back)) => {
                r = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// `records` records into `topic`; the last one in a batch of its own, so brokers that report a
/// partition's end as its last batch's base offset + 1 (Tansu 0.6) still report it right.
fn fill(servers: &str, topic: &str, records: u64, value_size: usize) -> anyhow::Result<()> {
    let p = producer(servers)?;
    let value: Vec<u8> = (0..value_size).map(|i| b'a' + (i % 26) as u8).collect();
    for i in 0..records {
        if i + 1 == records {
            p.flush(Duration::from_secs(120))?;
        }
        send(&p, topic, &i.to_be_bytes(), &value);
    }
    p.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Raw librdkafka: consume every record of `from` and produce it to `to`; records per second.
fn raw_copy(servers: &str, from: &str, to: &str, records: u64) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", "weir-bench-raw")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(from, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let p = producer(servers)?;
    let start = Instant::now();
    let mut n = 0;
    while n < records {
        match consumer.poll(Duration::from_secs(30)) {
            None => bail!("raw consumer: no record for 30 s after {n} of {records}"),
            Some(m) => {
                let m = m?;
                send(
                    &p,
                    to,
                    m.key().unwrap_or_default(),
                    m.payload().unwrap_or_default(),
                );
                n += 1;
            }
        }
    }
    p.flush(Duration::from_secs(120))?;
    Ok(records as f64 / start.elapsed().as_secs_f64())
}

/// The same copy through weir; records per second and how many checkpoints completed.
fn weir_copy(
    rt: &tokio::runtime::Runtime,
    servers: &str,
    from: &str,
    to: &str,
    records: u64,
) -> anyhow::Result<(f64, u64)> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{to}-state"))
        .tempdir()?;
    let text = format!(
        r#"
[node.in]
kind = "source"
plugin = "kafka"
config = {{ bootstrap_servers = "{servers}", topics = ["{from}"], start = "earliest", stop_at = "latest" }}

[node.map]
kind = "operator"
plugin = "filter-map"
input = "in"

[node.out]
kind = "sink"
plugin = "kafka"
input = "map"
config = {{ bootstrap_servers = "{servers}", topic = "{to}", semantic = "exactly-once", transactional_id_prefix = "{to}" }}
"#
    );
    let spec = PipelineSpec::parse(&dir.path().join("bench.toml"), &text)?;
    let host = Arc::new(PluginHost::new()?);
    let graph = JobGraph::build(&spec, &host)?;
    let store = StateStore::open(&dir.path().join("state"))?;
    let (job_identity, _) = crate::checkpoint::identity::load_or_create(
        &dir.path().join("state"),
        "bench",
        std::path::Path::new("bench.toml"),
    )?;
    let job = graph.job(host, &job_identity.id);
    let mut hooks = StoreHooks {
        store: &store,
        job: job_identity,
        state_dir: dir.path().join("state"),
        retain: 3,
        pipeline: "bench".into(),
        savepoint_dir: dir.path().join("savepoints"),
        savepoint: None,
    };
    let options = RunOptions {
        interval: Some(Duration::from_secs(1)),
        ..RunOptions::default()
    };
    let start = Instant::now();
    let report = rt
        .block_on(runtime::run(job, options, &mut hooks, None))
        .context("the weir side of the benchmark failed")?;
    let elapsed = start.elapsed();
    let read = report.metrics[0].records_out();
    if read != records {
        bail!("weir read {read} records, expected {records}");
    }
    Ok((
        records as f64 / elapsed.as_secs_f64(),
        report.last_checkpoint.unwrap_or(0),
    ))
}
