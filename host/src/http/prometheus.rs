//! `GET /metrics`: the job's counters in the Prometheus text format (0.0.4), read at each scrape.
//!
//! Names follow Prometheus conventions: a `weir_` prefix, base units (seconds, bytes), counters
//! ending in `_total` (the encoder adds it), labels `node` and `subtask`. Invariant: a scrape
//! reads the runtime's atomics and the latest rate sample; it never waits on the job.

use super::App;
use crate::live::{Live, Status, Summary, ms};
use crate::metrics::{NodeMetrics, SubtaskMetrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::SystemTime;

/// The job's metrics as one scrape sees them.
pub fn encode(app: &Arc<App>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(app.clone())));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

struct Scrape(Arc<App>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

type Labels = Vec<(&'static str, String)>;

/// One metric family: its samples by label set.
fn family<N: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: Vec<(Labels, N)>,
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in &samples {
        value.encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// `f` of every subtask of `nodes` that has a value, labelled by node and subtask.
fn per_subtask<'m>(
    nodes: impl IntoIterator<Item = &'m Arc<NodeMetrics>>,
    f: impl Fn(&SubtaskMetrics) -> Option<f64>,
) -> Vec<(Labels, f64)> {
    nodes
        .into_iter()
        .flat_map(|m| {
            m.subtasks().iter().enumerate().filter_map(|(i, s)| {
                let labels = vec![("node", m.uid.clone()), ("subtask", i.to_string())];
                f(s).map(|v| (labels, v))
            })
        })
        .collect()
}

fn counter(v: f64) -> ConstCounter<f64> {
    ConstCounter::new(v)
}

fn gauge(v: f64) -> ConstGauge<f64> {
    ConstGauge::new(v)
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let app = &self.0;
        let live = &app.control.live;
        let summary = live.summary();
        let metrics = live.metrics();
        job_families(&mut e, live, &summary)?;
        flow_families(&mut e, app, &metrics)?;
        time_families(&mut e, &metrics)?;
        plugin_families(&mut e, live, &metrics)?;
        checkpoint_families(&mut e, live, &summary)
    }
}

type Encoded = Result<(), std::fmt::Error>;

fn node(uid: &str) -> Labels {
    vec![("node", uid.to_owned())]
}

fn as_counters(v: Vec<(Labels, f64)>) -> Vec<(Labels, ConstCounter<f64>)> {
    v.into_iter().map(|(l, x)| (l, counter(x))).collect()
}

fn as_gauges(v: Vec<(Labels, f64)>) -> Vec<(Labels, ConstGauge<f64>)> {
    v.into_iter().map(|(l, x)| (l, gauge(x))).collect()
}

/// The job as a whole: status, uptime, restarts.
fn job_families(e: &mut DescriptorEncoder, live: &Live, summary: &Summary) -> Encoded {
    family(
        e,
        "weir_job_status",
        "1 for the job's current status (starting, running, restarting, stopping, finished, failed, cancelled)",
        MetricType::Gauge,
        vec![(
            vec![("status", status_name(summary.status).to_owned())],
            gauge(1.0),
        )],
    )?;
    family(
        e,
        "weir_uptime_seconds",
        "Seconds since the job started (its first attempt)",
        MetricType::Gauge,
        vec![(
            vec![],
            gauge(
                SystemTime::now()
                    .duration_since(live.started)
                    .map_or(0.0, |d| d.as_secs_f64()),
            ),
        )],
    )?;
    family(
        e,
        "weir_restarts",
        "Restarts of the job after a failure",
        MetricType::Counter,
        vec![(vec![], counter(summary.restarts as f64))],
    )?;
    Ok(())
}

/// Records through the subtasks: counts, rates, busy and backpressured time, input queues.
fn flow_families(e: &mut DescriptorEncoder, app: &App, metrics: &[Arc<NodeMetrics>]) -> Encoded {
    let live = &app.control.live;
    family(
        e,
        "weir_records_in",
        "Records a subtask took in",
        MetricType::Counter,
        as_counters(per_subtask(metrics, |s| Some(s.records_in() as f64))),
    )?;
    family(
        e,
        "weir_records_out",
        "Records a subtask sent on",
        MetricType::Counter,
        as_counters(per_subtask(metrics, |s| Some(s.records_out() as f64))),
    )?;
    let rates = |f: &dyn Fn(&super::rates::Rate) -> f64| {
        live.nodes
            .iter()
            .map(|n| (node(&n.uid), gauge(f(&app.rates.of(&n.uid).node))))
            .collect::<Vec<_>>()
    };
    family(
        e,
        "weir_records_in_per_second",
        "Records a node took in per second, over the last second",
        MetricType::Gauge,
        rates(&|r| r.rate_in),
    )?;
    family(
        e,
        "weir_records_out_per_second",
        "Records a node sent on per second, over the last second",
        MetricType::Gauge,
        rates(&|r| r.rate_out),
    )?;
    family(
        e,
        "weir_busy_seconds",
        "Seconds a subtask spent in its node's code (for a Wasm node: in calls into its plugin)",
        MetricType::Counter,
        as_counters(per_subtask(metrics, |s| Some(s.busy().as_secs_f64()))),
    )?;
    family(
        e,
        "weir_backpressured_seconds",
        "Seconds a subtask waited for room in a full downstream channel",
        MetricType::Counter,
        as_counters(per_subtask(metrics, |s| {
            Some(s.backpressured().as_secs_f64())
        })),
    )?;
    family(
        e,
        "weir_input_queue_messages",
        "Messages waiting in a subtask's input channels",
        MetricType::Gauge,
        as_gauges(per_subtask(metrics, |s| Some(s.queued() as f64))),
    )?;
    let capacity = live.channel_capacity.max(1) as f64;
    family(
        e,
        "weir_input_queue_fill_ratio",
        "A subtask's queued input messages over one channel's capacity",
        MetricType::Gauge,
        as_gauges(per_subtask(metrics, |s| Some(s.queued() as f64 / capacity))),
    )?;
    Ok(())
}

/// Event time: watermarks, their lag, late records.
fn time_families(e: &mut DescriptorEncoder, metrics: &[Arc<NodeMetrics>]) -> Encoded {
    let now = ms(SystemTime::now()) as f64;
    let watermarks: Vec<(Labels, f64)> = metrics
        .iter()
        .filter_map(|m| m.watermark().map(|w| (node(&m.uid), w as f64)))
        .collect();
    family(
        e,
        "weir_watermark_seconds",
        "A node's event-time watermark (the least of its subtasks'), seconds since the epoch",
        MetricType::Gauge,
        as_gauges(
            watermarks
                .iter()
                .map(|(l, w)| (l.clone(), w / 1000.0))
                .collect(),
        ),
    )?;
    family(
        e,
        "weir_watermark_lag_seconds",
        "Wall clock minus a node's watermark",
        MetricType::Gauge,
        as_gauges(
            watermarks
                .into_iter()
                .map(|(l, w)| (l, (now - w) / 1000.0))
                .collect(),
        ),
    )?;
    family(
        e,
        "weir_late_records",
        "Records a node's event-time logic found too late",
        MetricType::Counter,
        metrics
            .iter()
            .map(|m| (node(&m.uid), counter(m.late() as f64)))
            .collect(),
    )?;
    Ok(())
}

/// What the Wasm plugins hold and spend.
fn plugin_families(
    e: &mut DescriptorEncoder,
    live: &Live,
    metrics: &[Arc<NodeMetrics>],
) -> Encoded {
    let wasm: Vec<&str> = live
        .nodes
        .iter()
        .filter(|n| n.wasm)
        .map(|n| n.uid.as_str())
        .collect();
    let wasm_metrics: Vec<_> = metrics
        .iter()
        .filter(|m| wasm.contains(&m.uid.as_str()))
        .collect();
    family(
        e,
        "weir_plugin_memory_bytes",
        "The most memory a subtask's Wasm plugin instance has held",
        MetricType::Gauge,
        as_gauges(per_subtask(wasm_metrics.iter().copied(), |s| {
            (s.memory() > 0).then(|| s.memory() as f64)
        })),
    )?;
    family(
        e,
        "weir_plugin_wasm_seconds",
        "Seconds a subtask's Wasm plugin spent in calls (computing, and in the host calls it makes)",
        MetricType::Counter,
        as_counters(per_subtask(wasm_metrics.iter().copied(), |s| {
            Some(s.busy().as_secs_f64())
        })),
    )?;
    Ok(())
}

/// Checkpoints: counts, time, the newest one's duration and size.
fn checkpoint_families(e: &mut DescriptorEncoder, live: &Live, summary: &Summary) -> Encoded {
    family(
        e,
        "weir_checkpoints_completed",
        "Checkpoints completed",
        MetricType::Counter,
        vec![(vec![], counter(summary.checkpoints_completed as f64))],
    )?;
    family(
        e,
        "weir_checkpoints_failed",
        "Checkpoints that failed or expired",
        MetricType::Counter,
        vec![(vec![], counter(summary.checkpoints_failed as f64))],
    )?;
    family(
        e,
        "weir_checkpoint_seconds",
        "Seconds all completed checkpoints took together, trigger to every acknowledgement stored",
        MetricType::Counter,
        vec![(vec![], counter(summary.checkpoint_seconds_total))],
    )?;
    let completed = live
        .checkpoints()
        .into_iter()
        .rev()
        .find(|c| c.duration_ms.is_some());
    if let Some(c) = completed {
        family(
            e,
            "weir_last_checkpoint_duration_seconds",
            "How long the newest finished checkpoint took",
            MetricType::Gauge,
            vec![(vec![], gauge(c.duration_ms.unwrap_or(0) as f64 / 1000.0))],
        )?;
        family(
            e,
            "weir_last_checkpoint_size_bytes",
            "Operator and sink state in the newest finished checkpoint (keyed state is stored in its own pieces)",
            MetricType::Gauge,
            vec![(vec![], gauge(c.state_bytes.unwrap_or(0) as f64))],
        )?;
    }
    Ok(())
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Starting => "starting",
        Status::Running => "running",
        Status::Restarting => "restarting",
        Status::Stopping => "stopping",
        Status::Finished => "finished",
        Status::Failed => "failed",
        Status::Cancelled => "cancelled",
    }
}
