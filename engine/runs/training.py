"""Start and resume training runs: what `tanren train`/`resume` and the workbench both do."""

from __future__ import annotations

from collections.abc import Sequence

from engine.config import RunConfig
from engine.data.kinds import check_objective, data_kind
from engine.data.readers import ensure_readable
from engine.jobs import launch_detached
from engine.models.resolve import resolve_model
from engine.paths import Home
from engine.phrases import phrase
from engine.runs.rundir import RunDir, RunError, create_run, resume_command
from engine.train.checkpoints import latest_checkpoint
from engine.train.extras import check_extras

WORKER = "engine.train.worker"


def start_training(config: RunConfig, home: Home, *, nproc: int = 1, dist_args: Sequence[str] = ()) -> tuple[RunDir, int]:
    """Create the run folder and launch its detached worker; returns the run and the worker's pid."""
    if not config.data.path:
        raise RunError(phrase("no training data given"), where="data.path",
                       hint=phrase("pass --data FILE, e.g. --data {example}",
                                   example="engine/data/samples/ja_en_chat.jsonl"))
    _check_nproc(nproc)
    check_extras(config)
    _check_sharding(config, nproc, dist_args)
    # Mistakes found now cost nothing; in the worker they would surface after model loading.
    for path in filter(None, (config.data.path, config.data.validation_path)):
        ensure_readable(path)
        check_objective(config.training.objective, data_kind(path, config.data.format))
    resolve_model(config.model.base, home)
    run = create_run(config, home)
    return run, launch_detached(run, WORKER, nproc=nproc, dist_args=dist_args)


def resume_training(run: RunDir, *, nproc: int = 1, dist_args: Sequence[str] = ()) -> int:
    """Continue a stopped or crashed run from its last checkpoint; returns the worker's pid."""
    if run.status().state == "done":
        raise RunError(phrase("{name} already finished", name=run.name),
                       hint=phrase("start a new run with adapter.init_adapter to train further"))
    _check_nproc(nproc)
    check_extras(run.config())  # a package uninstalled since the start
    _check_sharding(run.config(), nproc, dist_args)
    _check_same_processes(run, nproc, dist_args)
    return launch_detached(run, WORKER, ["--resume"], nproc=nproc, dist_args=dist_args)


def _check_sharding(config: RunConfig, nproc: int, dist_args: Sequence[str]) -> None:
    """fsdp or deepspeed in one process would train unsharded: refused rather than done quietly."""
    strategy = config.training.distributed
    if strategy != "ddp" and nproc == 1 and not dist_args:
        raise RunError(phrase("training.distributed: {strategy} shards the model over several processes, but "
                              "--nproc is 1", strategy=strategy),
                       where="--nproc", hint=phrase("pass --nproc N (the GPUs to shard over), or train with ddp"))


def _check_same_processes(run: RunDir, nproc: int, dist_args: Sequence[str]) -> None:
    """A sharded checkpoint holds one slice per process: it resumes with the count that wrote it."""
    latest = latest_checkpoint(run.checkpoints)
    if latest is None or dist_args or run.config().training.distributed == "ddp":
        return  # several nodes: --nproc counts one node's processes, the checkpoint all of them
    written = len(list(latest.glob("rng_state_*.pth"))) or 1  # the trainer saves one RNG state per process
    if written != nproc:
        raise RunError(phrase("{checkpoint} of {name} was written by {written} processes, and --nproc is {nproc}",
                              checkpoint=latest.name, name=run.name, written=written, nproc=nproc),
                       where="--nproc", hint=phrase("resume with: {command}",
                                                    command=resume_command(run.name, "--nproc", str(written))))


def _check_nproc(nproc: int) -> None:
    if nproc < 1:
        raise RunError(phrase("--nproc must be at least 1"), where="--nproc")
