"""`tanren train`, `resume`, `stop`, `logs` and `runs`: training runs from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from engine.config import RunConfig, apply_overrides, load_yaml
from engine.i18n import Gettext
from engine.jobs import request_stop
from engine.jobs.print_follow import follow, print_events
from engine.paths import Home
from engine.presentation.event_lines import summarize
from engine.runs.rundir import RunDir, RunError, list_runs, open_run, remove_run
from engine.runs.training import resume_training, start_training
from engine.textwidth import format_table, human_bytes

# Shortcut flags for the values people change most; anything else goes through --set.
SHORTCUTS = {
    "base": "model.base", "data": "data.path", "method": "adapter.method", "max_steps": "training.max_steps",
    "epochs": "training.epochs", "save_steps": "training.save_steps", "lr": "training.learning_rate",
    "rank": "adapter.rank", "max_length": "data.max_length", "batch_size": "training.micro_batch_size",
    "grad_accum": "training.gradient_accumulation", "seed": "training.seed", "name": "name",
    "kernels": "training.kernels", "objective": "training.objective", "beta": "training.beta",
    "distributed": "training.distributed", "init_adapter": "adapter.init_adapter",
}


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    train = subparsers.add_parser("train", help="start a fine-tuning run (detached; survives SSH drops)")
    train.add_argument("--config", help="run config YAML (see `tanren config`)")
    for flag, key in SHORTCUTS.items():
        train.add_argument(f"--{flag.replace('_', '-')}", dest=flag, metavar=key.split(".")[-1].upper(),
                           help=f"sets {key}")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                       help="set any config value (repeatable)")
    train.add_argument("--estimate", action="store_true",
                       help="print the memory the run would need per process against the free memory here, "
                            "and exit without starting it")
    _add_launch_options(train)
    train.set_defaults(handler=_train)

    resume = subparsers.add_parser("resume", help="continue a stopped or crashed run from its last checkpoint")
    resume.add_argument("run")
    _add_launch_options(resume)
    resume.set_defaults(handler=_resume)

    stop = subparsers.add_parser("stop", help="stop a run gracefully at the next step (saving a checkpoint)")
    stop.add_argument("run")
    stop.set_defaults(handler=_stop)

    logs = subparsers.add_parser("logs", help="show a run's progress events")
    logs.add_argument("run")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following until the run ends")
    logs.add_argument("--raw", action="store_true", help="print the process output (run.log) instead")
    logs.set_defaults(handler=_logs)

    runs = subparsers.add_parser("runs", help="list runs with status, progress and disk use")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(handler=_runs)
    actions = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    rm = actions.add_parser("rm", help="delete a finished run and its files")
    rm.add_argument("run")
    rm.set_defaults(handler=_rm)


def _add_launch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--follow", action="store_true", help="stream progress and exit with the run's outcome")
    parser.add_argument("--nproc", type=int, default=1, help="processes per node (DDP via torchrun)")
    parser.add_argument("--dist", dest="dist_args", action="append", default=[], metavar="TORCHRUN_ARG",
                        help="pass an option to torchrun, e.g. --dist=--nnodes=2 --dist=--rdzv-endpoint=host:29500")


def build_config(args: argparse.Namespace) -> RunConfig:
    config = load_yaml(args.config) if args.config else RunConfig()
    shortcuts = [f"{key}={getattr(args, flag)}" for flag, key in SHORTCUTS.items() if getattr(args, flag) is not None]
    return apply_overrides(config, [*shortcuts, *args.overrides])


def _train(args: argparse.Namespace) -> int:
    home = Home.from_env()
    if args.estimate:
        return _estimate(build_config(args), home, args.nproc)
    run, pid = start_training(build_config(args), home, nproc=args.nproc, dist_args=args.dist_args)
    return _launched(run, pid, args, resume=False, offset=0)


def _estimate(config: RunConfig, home: Home, nproc: int) -> int:
    from engine.train import memory

    result = memory.check(config, home, max(nproc, 1))
    print("\n".join(memory.table(result)))
    if (warning := memory.advice(result)) is not None:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _resume(args: argparse.Namespace) -> int:
    run = open_run(args.run, Home.from_env())
    offset = run.events.size()  # follow only what this launch writes
    pid = resume_training(run, nproc=args.nproc, dist_args=args.dist_args)
    return _launched(run, pid, args, resume=True, offset=offset)


def _launched(run: RunDir, pid: int, args: argparse.Namespace, *, resume: bool, offset: int) -> int:
    print(f"{'resumed' if resume else 'started'} {run.name} (pid {pid}); folder {run.path}", file=sys.stderr)
    if not args.follow:
        print(f"follow it with: tanren logs {run.name} -f", file=sys.stderr)
        print(run.name)
        return 0
    return follow(run, args.catalog.gettext, offset=offset)


def _stop(args: argparse.Namespace) -> int:
    run = open_run(args.run, Home.from_env())
    if not request_stop(run):
        raise RunError(f"{run.name} is not running (status: {run.status().state})")
    print(f"asked {run.name} to stop at its next step; it saves a checkpoint first", file=sys.stderr)
    return 0


def _logs(args: argparse.Namespace) -> int:
    run = open_run(args.run, Home.from_env())
    if args.raw:
        sys.stdout.write(run.log_file.read_text(encoding="utf-8", errors="replace") if run.log_file.exists() else "")
        return 0
    if args.follow:
        return follow(run, args.catalog.gettext)
    print_events(run, args.catalog.gettext)
    return 0


def _runs(args: argparse.Namespace) -> int:
    summaries = [summarize(run) for run in list_runs(Home.from_env())]
    if args.json:
        print(json.dumps([asdict(s) for s in summaries], ensure_ascii=False, indent=2))
        return 0
    if not summaries:
        print("no runs yet; start one with: tanren train --data FILE")
        return 0
    rows = [[s.name, s.status.state, f"{s.step}/{s.total_steps or '?'}",
             f"{s.loss:.4f}" if s.loss is not None else "-", s.method, s.base, human_bytes(s.disk_bytes)]
            for s in summaries]
    print(format_table(["RUN", "STATUS", "STEP", "LOSS", "METHOD", "BASE", "DISK"], rows))
    return 0


def _rm(args: argparse.Namespace) -> int:
    run = open_run(args.run, Home.from_env())
    size = run.disk_bytes()
    remove_run(run)
    print(f"removed {run.name} ({human_bytes(size)})", file=sys.stderr)
    return 0
