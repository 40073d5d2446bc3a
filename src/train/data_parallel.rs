//! Data-parallel training: one worker per device, each with a replica of the model and of the
//! optimiser, a disjoint shard of every batch, gradients averaged over the workers before every
//! step, and so the same parameters on every worker at all times (PyTorch DDP's scheme).
//!
//! Workers are threads of one process per machine: Candle's tensors and models can be shared
//! between threads, one process keeps one data loader, one run directory and one writer, and a
//! machine's GPUs need no launcher. Across machines (NCCL), one process per machine runs the
//! same command with `--nodes/--node-rank/--master`; the first machine's first worker is rank 0.
//!
//! Rank 0 is the trainer's own model and optimiser (what checkpoints save); the other local
//! workers are replicas that start as copies of it. BatchNorm keeps per-replica batch
//! statistics by default (DDP's default), or shares the global batch's (`model.batch_norm =
//! "sync"`, PyTorch's SyncBatchNorm); after every step rank 0's running statistics are
//! broadcast, as DDP does with its buffers, so every replica evaluates the same.

use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{Device, Tensor};

use super::setup::{optimiser_for, Setup};
use super::step::{forward_loss, gradients};
use crate::data::{Batch, Shards};
use crate::learn::loss::LossConfig;
use crate::learn::optim::Adam;
use crate::learn::precision::Precision;
use crate::learn::schedule::Hypers;
use crate::models::{build, BatchNormMode, KeypointNet, ParamStore};
use crate::ops::sync_stats::{with_stats_reducer, StatsReducer};
use crate::parallel::{is_stopped, Communicator};
use crate::{Error, Result};

/// A worker other than rank 0 of this process: its own copy of everything.
struct Replica {
    store: ParamStore,
    model: Box<dyn KeypointNet>,
    opt: Adam,
}

/// The workers of this process and their communicators.
pub struct DataParallel {
    /// The devices of this process's workers, rank 0's first.
    devices: Vec<Device>,
    /// Shards per batch (all workers of all processes).
    world: usize,
    /// Global rank of this process's first worker.
    first_rank: usize,
    /// One per local worker, in rank order (shared with the worker's synchronised BatchNorm).
    comms: Vec<SharedComm>,
    /// Whether BatchNorm shares statistics between the workers.
    sync_bn: bool,
    /// Local workers 1.. (local worker 0 is the trainer's own model).
    replicas: Vec<Replica>,
    /// Fault injection for tests: the global rank that fails, and at which call of `step`.
    fail: Option<(usize, u64)>,
    steps: u64,
}

/// One worker's model, parameters and optimiser for one step; rank 0's is lent by the trainer.
pub struct Worker<'a> {
    pub model: &'a dyn KeypointNet,
    pub store: &'a ParamStore,
    pub opt: &'a mut Adam,
}

impl DataParallel {
    /// The workers of this process on `devices` (the first is `s`'s own device), with one
    /// communicator each from `group`. Replicas are built like `s`'s model and optimiser; call
    /// [`DataParallel::copy_lead`] to make them copies of rank 0 (after loading a checkpoint).
    pub fn new(s: &Setup, devices: Vec<Device>, group: Group) -> Result<Self> {
        let Group {
            comms,
            world,
            first_rank,
        } = group;
        if comms.len() != devices.len() {
            return Err(Error::Msg(format!(
                "{} communicators for {} devices",
                comms.len(),
                devices.len()
            )));
        }
        let batch = s.cfg.batch_size;
        if !batch.is_multiple_of(world) {
            return Err(Error::config(format!(
                "batch_size {batch} is the global batch and must divide by the number of \
                 workers, {world} (choose a multiple of {world})"
            )));
        }
        let replicas = devices[1..]
            .iter()
            .map(|dev| {
                let mut store = ParamStore::new(dev, s.cfg.seed);
                let model = build(&s.cfg.model, &mut store)?;
                let opt = optimiser_for(&store, &s.cfg)?;
                Ok(Replica { store, model, opt })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DataParallel {
            devices,
            world,
            first_rank,
            comms: comms.into_iter().map(|c| Arc::new(Mutex::new(c))).collect(),
            sync_bn: s.cfg.model.batch_norm == BatchNormMode::Sync,
            replicas,
            fail: None,
            steps: 0,
        })
    }

    /// Number of workers in the group (all processes).
    pub fn world(&self) -> usize {
        self.world
    }

    /// How the loader cuts batches for this process's workers.
    pub fn shards(&self) -> Shards {
        Shards {
            world: self.world,
            first: self.first_rank,
            devices: self.devices.clone(),
        }
    }

    /// Makes worker `rank` fail at the `at`-th step from now (1-based): tests of the failure path.
    pub fn inject_failure(&mut self, rank: usize, at: u64) {
        self.fail = Some((rank, self.steps + at));
    }

    /// Copies rank 0's weights, buffers and optimiser state into every local replica.
    pub fn copy_lead(&mut self, store: &ParamStore, opt: &Adam) -> Result<()> {
        let weights = store.named_tensors().into_iter().collect();
        let (moments, meta) = opt.export();
        for r in &mut self.replicas {
            r.store
                .load_tensors(&weights, std::path::Path::new("rank 0"))?;
            r.opt
                .import(&moments, &meta, std::path::Path::new("rank 0"))?;
        }
        Ok(())
    }

    /// One data-parallel step: each local worker's forward and backward on its shard (in
    /// parallel threads), the gradients averaged over all workers, the same update everywhere.
    /// Returns the mean loss over the workers' shards; when it is not finite no worker updates.
    pub fn step(
        &mut self,
        lead: Worker<'_>,
        shards: &[Batch],
        loss: &LossConfig,
        hypers: &Hypers,
        precision: Precision,
    ) -> Result<f64> {
        if shards.len() != self.devices.len() {
            return Err(Error::Msg(format!(
                "{} shards for {} workers",
                shards.len(),
                self.devices.len()
            )));
        }
        self.steps += 1;
        let fail_here = self
            .fail
            .filter(|&(_, at)| at == self.steps)
            .map(|(rank, _)| rank);
        let (first, sync_bn) = (self.first_rank, self.sync_bn);
        let mut workers = vec![lead];
        for r in &mut self.replicas {
            workers.push(Worker {
                model: r.model.as_ref(),
                store: &r.store,
                opt: &mut r.opt,
            });
        }
        let task = StepTask {
            loss,
            hypers,
            precision,
        };
        let task = &task;
        let results: Vec<Result<f64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = workers
                .into_iter()
                .zip(&self.comms)
                .zip(shards)
                .enumerate()
                .map(|(i, ((worker, comm), batch))| {
                    let rank = first + i;
                    let fail = fail_here == Some(rank);
                    scope.spawn(move || {
                        let job = std::panic::AssertUnwindSafe(|| {
                            let step = || {
                                if fail {
                                    return Err(Error::Msg("injected failure (test)".into()));
                                }
                                worker_step(worker, comm, batch, task)
                            };
                            if sync_bn {
                                let reducer = Arc::new(CommReducer(Arc::clone(comm)));
                                with_stats_reducer(reducer, step)
                            } else {
                                step()
                            }
                        });
                        let out = std::panic::catch_unwind(job).unwrap_or_else(|panic| {
                            let what = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_else(|| "panic".into());
                            Err(Error::Msg(format!("panicked: {what}")))
                        });
                        if let Err(e) = &out {
                            lock(comm).abort(&e.to_string());
                        }
                        out.map_err(|e| (rank, e))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("worker threads catch their panics"))
                .map(|r| r.map_err(|(rank, e)| rank_error(rank, e)))
                .collect()
        });
        // The worker that failed is the one to name; the others only stopped for it.
        let mut losses = Vec::with_capacity(results.len());
        let mut stopped = None;
        for r in results {
            match r {
                Ok(v) => losses.push(v),
                Err(e) if is_stopped(&e) => {
                    stopped.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        match stopped {
            Some(e) => Err(e),
            None => Ok(losses[0]),
        }
    }
}

/// A worker's communicator, lent to its synchronised BatchNorm layers during a step.
type SharedComm = Arc<Mutex<Box<dyn Communicator>>>;

/// The communicator, also after a worker panicked holding it (its state is still consistent:
/// collectives finish or abort as a whole).
fn lock(comm: &SharedComm) -> MutexGuard<'_, Box<dyn Communicator>> {
    comm.lock().unwrap_or_else(|e| e.into_inner())
}

/// Synchronised BatchNorm's statistics through a worker's communicator.
struct CommReducer(SharedComm);

impl StatsReducer for CommReducer {
    fn world(&self) -> usize {
        lock(&self.0).world()
    }

    fn mean(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        let mut reduced = lock(&self.0)
            .all_reduce_mean(std::slice::from_ref(t))
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(reduced.remove(0))
    }
}

/// A worker's own failure, named with its rank (errors that only relay another's pass as they
/// are).
fn rank_error(rank: usize, e: Error) -> Error {
    if is_stopped(&e) {
        e
    } else {
        Error::Msg(format!(
            "data-parallel worker {rank} failed: {e}; every worker stopped"
        ))
    }
}

/// What every worker does the same in a step.
struct StepTask<'a> {
    loss: &'a LossConfig,
    hypers: &'a Hypers,
    precision: Precision,
}

/// One worker's part of a step (see [`DataParallel::step`]).
fn worker_step(
    worker: Worker<'_>,
    comm: &SharedComm,
    batch: &Batch,
    task: &StepTask,
) -> Result<f64> {
    let Worker { model, store, opt } = worker;
    let (loss, value) = forward_loss(model, task.loss, batch, task.precision)?;
    // Every worker learns the mean loss first, so that a non-finite loss anywhere skips the
    // update everywhere.
    let dev = batch.images.device();
    let mean = lock(comm).all_reduce_mean(&[Tensor::new(&[value as f32], dev)?])?;
    let mean = f64::from(mean[0].to_vec1::<f32>()?[0]);
    if !mean.is_finite() {
        return Ok(mean);
    }
    let mut grads = gradients(&loss, opt)?;
    let with_grad: Vec<&candle_core::Var> = store
        .params()
        .iter()
        .map(|p| &p.var)
        .filter(|v| grads.get(v.as_tensor()).is_some())
        .collect();
    let local: Vec<Tensor> = with_grad
        .iter()
        .filter_map(|v| grads.remove(v.as_tensor()))
        .collect();
    let averaged = lock(comm).all_reduce_mean(&local)?;
    for (v, g) in with_grad.iter().zip(averaged) {
        grads.insert(v.as_tensor(), g);
    }
    opt.step(&grads, task.hypers)?;
    // Rank 0's BatchNorm running statistics for everybody.
    let buffers: Vec<&candle_core::Var> = store
        .params()
        .iter()
        .filter(|p| !p.is_trainable())
        .map(|p| &p.var)
        .collect();
    let values: Vec<Tensor> = buffers.iter().map(|v| v.as_tensor().clone()).collect();
    for (v, t) in buffers.iter().zip(lock(comm).broadcast(&values, 0)?) {
        v.set(&t)?;
    }
    Ok(mean)
}

/// Several machines: `count` processes, one per machine, each with the same number of devices;
/// this one is `rank`; `master` is node 0's `host:port` for the rendezvous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nodes {
    pub count: usize,
    pub rank: usize,
    pub master: String,
}

/// This process's part of a group of workers.
pub struct Group {
    /// One communicator per local worker, in rank order.
    pub comms: Vec<Box<dyn Communicator>>,
    /// Workers in all processes.
    pub world: usize,
    /// Global rank of this process's first worker.
    pub first_rank: usize,
}

/// The communicators of this process's workers on `devices`. NCCL when every device is a GPU
/// and the `nccl` feature is built; otherwise worker threads meeting in memory (one machine
/// only).
pub fn communicators(devices: &[Device], nodes: Option<&Nodes>) -> Result<Group> {
    let local = devices.len();
    let (count, node) = nodes.map_or((1, 0), |n| (n.count, n.rank));
    let (world, first) = (local * count, node * local);
    #[cfg(feature = "nccl")]
    if devices.iter().all(Device::is_cuda) {
        let comms = nccl_group(devices, nodes, world, first)?;
        return Ok(Group {
            comms,
            world,
            first_rank: first,
        });
    }
    if count > 1 {
        return Err(Error::config(
            "training on several machines (--nodes) exchanges gradients over NCCL: it needs \
             CUDA devices and a build with `--features nccl`",
        ));
    }
    let comms = crate::parallel::threads::thread_group(local)
        .into_iter()
        .map(|c| Box::new(c) as Box<dyn Communicator>)
        .collect();
    Ok(Group {
        comms,
        world,
        first_rank: first,
    })
}

/// NCCL communicators for the local GPUs: node 0 makes the id (and serves it to the other
/// nodes), the others fetch it; the local workers join together (NCCL's init waits for all).
#[cfg(feature = "nccl")]
fn nccl_group(
    devices: &[Device],
    nodes: Option<&Nodes>,
    world: usize,
    first: usize,
) -> Result<Vec<Box<dyn Communicator>>> {
    use crate::parallel::nccl::{new_id, NcclComm, ID_LEN};
    use crate::parallel::rendezvous::{fetch, serve, DEFAULT_TIMEOUT};
    let id: [u8; ID_LEN] = match nodes {
        Some(n) if n.rank > 0 => fetch(&n.master, n.rank, ID_LEN, DEFAULT_TIMEOUT)?
            .try_into()
            .map_err(|_| Error::Msg("rendezvous: short NCCL id".into()))?,
        _ => new_id()?,
    };
    std::thread::scope(|scope| {
        let server = nodes
            .filter(|n| n.rank == 0 && n.count > 1)
            .map(|n| scope.spawn(move || serve(&n.master, &id, n.count, DEFAULT_TIMEOUT)));
        let joins: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(i, dev)| scope.spawn(move || NcclComm::join(dev, first + i, world, &id)))
            .collect();
        let comms = joins
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| Error::Msg("nccl: a worker panicked while joining".into()))?
                    .map(|c| Box::new(c) as Box<dyn Communicator>)
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(s) = server {
            s.join()
                .map_err(|_| Error::Msg("rendezvous server panicked".into()))??;
        }
        Ok(comms)
    })
}
