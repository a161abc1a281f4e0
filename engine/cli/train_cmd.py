"""`tanren train`, `resume`, `stop`, `logs` and `runs`: training runs from the command line."""

from __future__ import annotations

import argparse
import json
import sys

from engine.config import RunConfig, apply_overrides, load_yaml
from engine.i18n import N_, Gettext
from engine.jobs import request_stop
from engine.jobs.print_follow import follow, print_events
from engine.paths import Home
from engine.phrases import phrase
from engine.presentation.event_lines import state_name, state_phrase, summarize
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

# `tanren runs`' columns (LOSS is the metric's name; --json keeps the field names)
RUNS_HEADERS = (N_("RUN"), N_("STATUS"), N_("STEP"), "LOSS", N_("METHOD"), N_("BASE"), N_("DISK"))


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    train = subparsers.add_parser("train", help=_("start a fine-tuning run (detached; survives SSH drops)"))
    train.add_argument("--config", help=_("run config YAML (see `tanren config`)"))
    for flag, key in SHORTCUTS.items():
        train.add_argument(f"--{flag.replace('_', '-')}", dest=flag, metavar=key.split(".")[-1].upper(),
                           help=_("sets {field}", field=key))
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                       help=_("set any config value (repeatable)"))
    train.add_argument("--estimate", action="store_true",
                       help=_("print the memory the run would need per process against the free memory here, "
                              "and exit without starting it"))
    _add_launch_options(train, _)
    train.set_defaults(handler=_train)

    resume = subparsers.add_parser("resume", help=_("continue a stopped or crashed run from its last checkpoint"))
    resume.add_argument("run", help=_("the run's name"))
    _add_launch_options(resume, _)
    resume.set_defaults(handler=_resume)

    stop = subparsers.add_parser("stop", help=_("stop a run gracefully at the next step (saving a checkpoint)"))
    stop.add_argument("run", help=_("the run's name"))
    stop.set_defaults(handler=_stop)

    logs = subparsers.add_parser("logs", help=_("show a run's progress events"))
    logs.add_argument("run", help=_("the run's name"))
    logs.add_argument("-f", "--follow", action="store_true", help=_("keep following until the run ends"))
    logs.add_argument("--raw", action="store_true", help=_("print the process output (run.log) instead"))
    logs.set_defaults(handler=_logs)

    runs = subparsers.add_parser("runs", help=_("list runs with status, progress and disk use"))
    runs.add_argument("--json", action="store_true", help=_("print the list as JSON"))
    runs.set_defaults(handler=_runs)
    actions = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    rm = actions.add_parser("rm", help=_("delete a finished run and its files"))
    rm.add_argument("run", help=_("the run's name"))
    rm.set_defaults(handler=_rm)


def _add_launch_options(parser: argparse.ArgumentParser, _: Gettext) -> None:
    parser.add_argument("--follow", action="store_true", help=_("stream progress and exit with the run's outcome"))
    parser.add_argument("--nproc", type=int, default=1, help=_("processes per node (DDP via torchrun)"))
    parser.add_argument("--dist", dest="dist_args", action="append", default=[], metavar="TORCHRUN_ARG",
                        help=_("pass an option to torchrun, e.g. {example}",
                               example="--dist=--nnodes=2 --dist=--rdzv-endpoint=host:29500"))


def build_config(args: argparse.Namespace) -> RunConfig:
    config = load_yaml(args.config) if args.config else RunConfig()
    shortcuts = [f"{key}={getattr(args, flag)}" for flag, key in SHORTCUTS.items() if getattr(args, flag) is not None]
    return apply_overrides(config, [*shortcuts, *args.overrides])


def _train(args: argparse.Namespace) -> int:
    home = Home.from_env()
    if args.estimate:
        return _estimate(build_config(args), home, args.nproc, args.catalog.gettext)
    run, pid = start_training(build_config(args), home, nproc=args.nproc, dist_args=args.dist_args)
    return _launched(run, pid, args, resume=False, offset=0)


def _estimate(config: RunConfig, home: Home, nproc: int, _: Gettext) -> int:
    from engine.train import memory

    result = memory.check(config, home, max(nproc, 1))
    print("\n".join(memory.table(result, _)))
    if (warning := memory.advice(result, _)) is not None:
        print(_("warning: {warning}", warning=warning), file=sys.stderr)
    return 0


def _resume(args: argparse.Namespace) -> int:
    run = open_run(args.run, Home.from_env())
    offset = run.events.size()  # follow only what this launch writes
    pid = resume_training(run, nproc=args.nproc, dist_args=args.dist_args)
    return _launched(run, pid, args, resume=True, offset=offset)


def _launched(run: RunDir, pid: int, args: argparse.Namespace, *, resume: bool, offset: int) -> int:
    _ = args.catalog.gettext
    launched = (_("resumed {name} (pid {pid}); folder {path}", name=run.name, pid=pid, path=run.path) if resume
                else _("started {name} (pid {pid}); folder {path}", name=run.name, pid=pid, path=run.path))
    print(launched, file=sys.stderr)
    if not args.follow:
        print(_("follow it with: {command}", command=run.follow_command), file=sys.stderr)
        print(run.name)
        return 0
    return follow(run, args.catalog.gettext, offset=offset)


def _stop(args: argparse.Namespace) -> int:
    run = open_run(args.run, Home.from_env())
    if not request_stop(run):
        raise RunError(phrase("{name} is not running (status: {state})", name=run.name, state=state_phrase(run.status().state)))
    print(args.catalog.gettext("asked {name} to stop at its next step; it saves a checkpoint first", name=run.name),
          file=sys.stderr)
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
        print(json.dumps([s.as_json() for s in summaries], ensure_ascii=False, indent=2))
        return 0
    _ = args.catalog.gettext
    if not summaries:
        print(_("no runs yet; start one with: {command}", command="tanren train --data FILE"))
        return 0
    rows = [[s.name, state_name(s.status.state, _), f"{s.step}/{s.total_steps or '?'}",
             f"{s.loss:.4f}" if s.loss is not None else "-", s.method, s.base, human_bytes(s.disk_bytes)]
            for s in summaries]
    print(format_table([_(header) for header in RUNS_HEADERS], rows))
    return 0


def _rm(args: argparse.Namespace) -> int:
    run = open_run(args.run, Home.from_env())
    size = run.disk_bytes()
    remove_run(run)
    print(args.catalog.gettext("removed {name} ({size})", name=run.name, size=human_bytes(size)), file=sys.stderr)
    return 0
