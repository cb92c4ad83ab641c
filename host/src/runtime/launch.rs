//! Starting a job: the channels between subtasks (wiring), each subtask's body (its node made
//! on its own thread, the operators chained into it, what it restores), and one OS thread per
//! subtask (spawning). The coordinator gets back the control channels and the thread handles.
//!
//! Invariants: one bounded channel per connected (upstream subtask, downstream subtask) pair,
//! none into a chained operator; every stored event time decodes before any thread starts; a
//! subtask's thread always reports `Exited`, even when host code panics.

use super::chain::{Chained, Member};
use super::input::Inputs;
use super::output::{OutEdge, Output};
use super::subtask::{
    Control, Event, OperatorTask, SubtaskCtx, run_operator, run_sink, run_source,
};
use super::{Job, JobNode, Message, NodeFactory, RunError, RunOptions};
use crate::config::Partition;
use crate::metrics::NodeMetrics;
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use tokio::sync::mpsc::UnboundedSender;
use weir_core::time::SubtaskTime;

/// What makes a sink's subtask instances.
type SinkFactory =
    Arc<dyn Fn(u32) -> Result<Box<dyn super::SinkNode>, weir_core::NodeError> + Send + Sync>;

/// The body of one subtask, run on its own thread.
type SubtaskBody = Box<dyn FnOnce(&SubtaskCtx) -> Result<(), RunError> + Send>;

/// A started job, as the coordinator drives it.
pub(super) struct Launched {
    pub handles: Vec<JoinHandle<()>>,
    /// Control channels of the source subtasks (triggers, commits).
    pub sources: Vec<Sender<Control>>,
    /// Control channels of the sink subtasks (commits).
    pub sinks: Vec<Sender<Control>>,
    /// Subtasks, chained ones included: the acks that complete a checkpoint.
    pub subtasks: usize,
    /// Threads started: one per subtask that is not chained.
    pub threads: usize,
    /// Source subtasks: the `SourceEnded` events that end the input.
    pub sources_total: usize,
}

/// Wire `job`, build every subtask's body and start its thread.
pub(super) fn launch(
    job: &Job,
    options: &RunOptions,
    metrics: &[Arc<NodeMetrics>],
    events: UnboundedSender<Event>,
) -> Result<Launched, RunError> {
    let mut plan = Plan::new(job, options, metrics, events)?;
    let mut spawns = Vec::new();
    // Last node first: a chained operator's member is in its head's chain before the head's
    // body takes the chain.
    for (i, node) in job.nodes.iter().enumerate().rev() {
        for s in (0..node.parallelism).rev() {
            if let Some(spawn) = plan.body(i, node, s)? {
                spawns.push(spawn);
            }
        }
    }
    let threads = spawns.len();
    let mut handles = Vec::with_capacity(threads);
    for (ctx, body) in spawns.into_iter().rev() {
        handles.push(spawn(ctx, body, job)?);
    }
    Ok(Launched {
        handles,
        sources: plan.sources,
        sinks: plan.sinks,
        subtasks: plan.subtasks,
        threads,
        sources_total: plan.sources_total,
    })
}

type Outs = Vec<Vec<Vec<OutEdge>>>;
type Ins = Vec<Vec<Vec<Receiver<Message>>>>;

/// One empty list per subtask of `node`.
fn per_subtask<T>(node: &JobNode) -> Vec<Vec<T>> {
    (0..node.parallelism).map(|_| Vec::new()).collect()
}

/// Channels: one per connected (upstream subtask, downstream subtask) pair, by (node, subtask).
fn channels(job: &Job, chained_into: &[Option<usize>]) -> (Outs, Ins) {
    let mut outs: Outs = job.nodes.iter().map(per_subtask).collect();
    let mut ins: Ins = job.nodes.iter().map(per_subtask).collect();
    for (d, node) in job.nodes.iter().enumerate() {
        if chained_into[d].is_some() {
            continue;
        }
        for &(u, partition, port) in &node.inputs {
            for us in 0..job.nodes[u].parallelism {
                let targets: Vec<u32> = if partition == Partition::Forward {
                    vec![us]
                } else {
                    (0..node.parallelism).collect()
                };
                let mut senders: Vec<Sender<Message>> = Vec::new();
                for ds in targets {
                    let (tx, rx) = bounded(job.channel_capacity);
                    senders.push(tx);
                    ins[d][ds as usize].push(rx);
                }
                outs[u][us as usize].push(OutEdge {
                    partition,
                    port,
                    senders,
                });
            }
        }
    }
    (outs, ins)
}

/// Each subtask's event time to resume from, decoded before any subtask starts (a stored time
/// that does not decode fails the run with nothing running yet).
fn restore_times(
    job: &Job,
    options: &RunOptions,
) -> Result<Vec<Vec<Option<SubtaskTime>>>, RunError> {
    let mut all = Vec::with_capacity(job.nodes.len());
    for node in &job.nodes {
        let mut times = Vec::new();
        for s in 0..node.parallelism {
            let key = (weir_core::time::time_uid(&node.uid), s);
            let stored = options.restore.as_ref().and_then(|r| r.states.get(&key));
            times.push(match stored {
                None => None,
                Some(bytes) => Some(
                    SubtaskTime::decode(bytes)
                        .map_err(|e| RunError::Checkpoint(format!("{}[{s}]: {e}", node.uid)))?,
                ),
            });
        }
        all.push(times);
    }
    Ok(all)
}

/// `out`, the output of node `node`'s subtask, at the head of the operators chained into it.
fn lead(mut out: Output, node: usize, chain: Vec<Member>) -> Result<Output, RunError> {
    if !chain.is_empty() {
        let chain = super::chain::Chain::assemble(&mut out, node, chain)?;
        out.lead(chain)?;
    }
    Ok(out)
}

/// What building the subtasks' bodies needs and gathers.
struct Plan<'j> {
    job: &'j Job,
    options: &'j RunOptions,
    metrics: &'j [Arc<NodeMetrics>],
    events: UnboundedSender<Event>,
    chained_into: Vec<Option<usize>>,
    /// The node whose subtask each node runs in: itself, or the head of the chain it is in.
    heads: Vec<usize>,
    /// Per (head node, subtask): the operators chained into it, built in its thread.
    chains: Vec<Vec<Vec<Member>>>,
    outs: Outs,
    ins: Ins,
    times: Vec<Vec<Option<SubtaskTime>>>,
    /// Keyed state of this run's operators (a temporary store without a checkpoint store, and
    /// only when the job has an operator).
    keyed: Option<crate::keyed::Store>,
    sources: Vec<Sender<Control>>,
    sinks: Vec<Sender<Control>>,
    subtasks: usize,
    sources_total: usize,
}

impl<'j> Plan<'j> {
    /// The job's wiring: which operators run chained, the channels, the stored event times.
    fn new(
        job: &'j Job,
        options: &'j RunOptions,
        metrics: &'j [Arc<NodeMetrics>],
        events: UnboundedSender<Event>,
    ) -> Result<Self, RunError> {
        // Operators that run inside their upstream's subtask: no channel, no thread of their own.
        let chained_into = super::chain::plan(&job.nodes);
        for (d, up) in chained_into.iter().enumerate() {
            if let Some(u) = up {
                tracing::debug!(
                    "node `{}` runs chained into `{}` (no channel between them; `chain = false` on it keeps it apart)",
                    job.nodes[d].uid,
                    job.nodes[*u].uid
                );
            }
        }
        let (outs, ins) = channels(job, &chained_into);
        let times = restore_times(job, options)?;
        let has_operator = job
            .nodes
            .iter()
            .any(|n| matches!(n.factory, NodeFactory::Operator(_)));
        let keyed = match (&options.keyed, has_operator) {
            (Some(s), _) => Some(s.clone()),
            (None, true) => Some(crate::keyed::Store::temporary().map_err(RunError::Keyed)?),
            (None, false) => None,
        };
        let mut heads: Vec<usize> = Vec::with_capacity(job.nodes.len());
        for up in &chained_into {
            let head = up.map_or(heads.len(), |u| heads[u]);
            heads.push(head);
        }
        let chains = job.nodes.iter().map(per_subtask).collect();
        Ok(Plan {
            job,
            options,
            metrics,
            events,
            chained_into,
            heads,
            chains,
            outs,
            ins,
            times,
            keyed,
            sources: Vec::new(),
            sinks: Vec::new(),
            subtasks: 0,
            sources_total: 0,
        })
    }

    /// The context subtask `s` of node `i` runs with.
    fn ctx(&self, i: usize, node: &JobNode, s: u32) -> SubtaskCtx {
        let restore = self.options.restore.as_ref();
        SubtaskCtx {
            node: i,
            uid: node.uid.clone(),
            subtask: s,
            events: self.events.clone(),
            metrics: self.metrics[i].clone(),
            cancel: self.job.cancel.clone(),
            restore: restore.and_then(|r| r.states.get(&(node.uid.clone(), s)).cloned()),
            restore_time: self.times[i][s as usize],
            watermarks: node.watermarks.clone(),
            restored_checkpoint: restore.map(|r| r.checkpoint),
            abort_after_restore: restore.map(|r| r.abort.clone()).unwrap_or_default(),
        }
    }

    /// Subtask `s` of node `i`: its context and body, or `None` where it runs chained into its
    /// upstream's subtask (its member is then in that subtask's chain).
    fn body(
        &mut self,
        i: usize,
        node: &JobNode,
        s: u32,
    ) -> Result<Option<(SubtaskCtx, SubtaskBody)>, RunError> {
        self.subtasks += 1;
        let ctx = self.ctx(i, node, s);
        let mut out = Output::new(
            std::mem::take(&mut self.outs[i][s as usize]),
            self.job.max_parallelism,
        );
        out.measure(self.metrics[i].clone(), s);
        let chain = std::mem::take(&mut self.chains[i][s as usize]);
        let inputs = Inputs::new(
            std::mem::take(&mut self.ins[i][s as usize]),
            self.options.exactly_once,
        );
        let body: SubtaskBody = match node.factory.clone() {
            NodeFactory::Source(f) => {
                self.sources_total += 1;
                let (tx, rx) = unbounded();
                self.sources.push(tx);
                let batch_size = self.job.batch_size;
                Box::new(move |ctx| {
                    let out = lead(out, i, chain)?;
                    let mut node = f(ctx.subtask)?;
                    run_source(ctx, node.as_mut(), out, rx, batch_size)
                })
            }
            NodeFactory::Operator(f) => {
                let build = self.operator_build(node, f);
                if let Some(up) = self.chained_into[i] {
                    let member = Member {
                        node: i,
                        upstream: up,
                        port: node.inputs[0].2,
                        out,
                        start: Box::new(move |out| {
                            let (node, keyed) = build(&ctx)?;
                            let input = ctx.restore_time.map_or(i64::MIN, |t| t.input);
                            let task = OperatorTask::start(ctx, node, out, keyed, input)?;
                            Ok(Chained::new(task, input))
                        }),
                    };
                    self.chains[self.heads[i]][s as usize].push(member);
                    return Ok(None);
                }
                Box::new(move |ctx| {
                    let out = lead(out, i, chain)?;
                    let (node, keyed) = build(ctx)?;
                    run_operator(ctx.clone(), node, inputs, out, keyed)
                })
            }
            NodeFactory::Sink(f) => self.sink_body(node, s, f, inputs),
        };
        Ok(Some((ctx, body)))
    }

    /// How an operator subtask makes its instance and keyed state, on the thread that runs it.
    #[allow(clippy::type_complexity)]
    fn operator_build(
        &self,
        node: &JobNode,
        f: super::OperatorFactory,
    ) -> impl Fn(
        &SubtaskCtx,
    ) -> Result<(Box<dyn super::OperatorNode>, crate::keyed::SharedKeyed), RunError>
    + Send
    + 'static {
        let store = self.keyed.clone().expect("made for operators");
        let (uid, parallelism) = (node.uid.clone(), node.parallelism);
        let manifest = (self.options.restore.as_ref()).and_then(|r| r.keyed.get(&uid).cloned());
        let max_parallelism = self.job.max_parallelism;
        move |ctx: &SubtaskCtx| {
            let mut backend = crate::keyed::KeyedBackend::new(
                &store,
                &uid,
                ctx.subtask,
                parallelism,
                max_parallelism,
            )
            .map_err(RunError::Keyed)?;
            if let Some(m) = &manifest {
                backend.restore(m).map_err(RunError::Keyed)?;
            }
            let keyed: crate::keyed::SharedKeyed = Arc::new(std::sync::Mutex::new(backend));
            store.registry.add(&uid, ctx.subtask, parallelism, &keyed);
            let node = f(ctx.subtask, &keyed)?;
            Ok((node, keyed))
        }
    }

    /// A sink subtask's body: first the transactions of the subtasks a smaller parallelism
    /// dropped (what they prepared for the restored checkpoint published, what came after
    /// aborted, once), then its own loop.
    fn sink_body(&mut self, node: &JobNode, s: u32, f: SinkFactory, inputs: Inputs) -> SubtaskBody {
        let (tx, rx) = unbounded();
        self.sinks.push(tx);
        let retired = (self.options.restore.as_ref())
            .and_then(|r| r.retired.get(&(node.uid.clone(), s)).cloned())
            .unwrap_or_default();
        Box::new(move |ctx| {
            for (old, state) in &retired {
                let mut gone = f(*old)?;
                gone.restore(state)?;
                if let Some(id) = ctx.restored_checkpoint {
                    gone.commit(id)?;
                    for newer in &ctx.abort_after_restore {
                        gone.abort(*newer)?;
                    }
                }
            }
            let mut node = f(ctx.subtask)?;
            run_sink(ctx, node.as_mut(), inputs, rx)
        })
    }
}

/// One OS thread for a subtask (not tokio's blocking pool, whose 512 threads would leave the
/// rest of a large job waiting forever), inside this runtime's context so plugin calls can
/// wait on host I/O and timers.
fn spawn(ctx: SubtaskCtx, body: SubtaskBody, job: &Job) -> Result<JoinHandle<()>, RunError> {
    let rt = tokio::runtime::Handle::current();
    let name = format!("{}[{}]", ctx.uid, ctx.subtask);
    let spawned = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let _rt = rt.enter();
            // A bug in host code must end the job with an error, not leave the coordinator
            // waiting for a subtask that will never report.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&ctx)))
                .unwrap_or_else(|panic| {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(RunError::Internal(format!("subtask panicked: {msg}")))
                });
            let _ = ctx.events.send(Event::Exited {
                node: ctx.node,
                subtask: ctx.subtask,
                result,
            });
        });
    spawned.map_err(|e| {
        job.cancel.store(true, Ordering::Relaxed);
        RunError::Internal(format!(
            "cannot start a thread for subtask {name}: {e} (too many subtasks for this machine's thread limit?)"
        ))
    })
}
