"""`tanren eval TARGET`: perplexity, ROUGE and preference accuracy of a run (before and after its
adapter) or a model.

Results go to stdout (a table, or JSON with --json); loading messages and the progress bar go
to stderr. A run's results are also kept in the run folder (eval_results.json) and its model
card. Ctrl-C stops the evaluation with exit status 130 and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TextIO

from engine.config.arguments import add_loading_options, loading_config
from engine.events import Said
from engine.i18n import N_, Gettext
from engine.paths import Home
from engine.phrases import Phrase, in_language
from engine.presentation.eval_table import format_results
from evals.errors import CANCELLED

EXAMPLES = N_("""examples:
  tanren eval my-run                          base vs base + adapter on the run's held-out split
  tanren eval my-run --data heldout.jsonl --metrics perplexity
  tanren eval my-run --data pairs.jsonl --metrics preference   chosen vs rejected on held-out pairs
  tanren eval exports/merged --data heldout.jsonl     a merged HF folder
  tanren eval model.Q8_0.gguf --data heldout.jsonl    a GGUF file, through llama.cpp
  tanren eval smollm2-135m-instruct --adapter my-run --data heldout.jsonl --json""")


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    parser = subparsers.add_parser(
        "eval", help=_("perplexity, ROUGE and preference accuracy: a run before and after its adapter, or any model "
                       "or GGUF file"),
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_(EXAMPLES),
        description=_("Measure perplexity (on the assistant's tokens, as training weighs them), ROUGE-1/2/L of "
                      "greedy answers (Japanese-aware) and, on preference pairs, how often the chosen answer is "
                      "likelier than the rejected one. A run is measured before and after: its base, then base + "
                      "adapter."),
    )
    parser.add_argument("target", help=_("a run name, or a model: built-in name, HF folder (e.g. a merged export), "
                                         ".gguf file or cached hub id"))
    parser.add_argument("--data", metavar="PATH", help=_("data file (.jsonl, .json, .csv, .parquet); default for a "
                                                         "run: its held-out split (test, else validation)"))
    parser.add_argument("--adapter", action="append", default=[], metavar="RUN",
                        help=_("with a model: also measure it with this adapter, a run name or PEFT folder "
                               "(repeatable)"))
    parser.add_argument("--metrics", default="perplexity,rouge",
                        help=_("comma-separated: perplexity, rouge, preference (the share of preference pairs whose "
                               "chosen answer is likelier than the rejected one, and the mean margin); default "
                               "perplexity,rouge"))
    parser.add_argument("--limit", type=int, metavar="N", help=_("only the first N examples"))
    parser.add_argument("--json", action="store_true", help=_("print the results as JSON"))
    parser.add_argument("--max-length", type=int, metavar="TOKENS",
                        help=_("perplexity window, longer texts slide; the longest pair measured for preference "
                               "(default: a run's data.max_length, else the context)"))
    parser.add_argument("--stride", type=int, metavar="TOKENS",
                        help=_("sliding window step (default: half the window)"))
    parser.add_argument("--all-tokens", action="store_true",
                        help=_("perplexity on every token, not only the assistant's answers"))
    parser.add_argument("--max-new-tokens", type=int, metavar="N",
                        help=_("longest answer for ROUGE (default: a run's generation.max_new_tokens, else 256)"))
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help=_("answers generated at once with transformers (default 8)"))
    parser.add_argument("--backend", choices=("auto", "transformers", "llama.cpp"), default="auto",
                        help=_("auto: llama.cpp for .gguf files, transformers otherwise"))
    add_loading_options(parser)
    parser.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    from evals.evaluate import RESULTS_FILE, Settings, evaluate, save_to_run
    from evals.targets import plan_targets, select_data

    _ = args.catalog.gettext
    home = Home.from_env()
    model = loading_config(args)
    plan = plan_targets(args.target, home, adapters=args.adapter, model=model)
    settings = Settings.for_plan(
        plan, metrics=tuple(m.strip() for m in args.metrics.split(",") if m.strip()), max_length=args.max_length,
        stride=args.stride, assistant_only=False if args.all_tokens else None, max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, limit=args.limit, backend=args.backend,
    )
    dataset = select_data(plan, args.data, limit=args.limit)
    bar = ProgressBar(sys.stderr, _)
    try:
        report = evaluate(plan, dataset, settings, home, on_status=bar.status, progress=bar)
    except KeyboardInterrupt:
        bar.close()
        print(_(CANCELLED), file=sys.stderr)
        return 130
    finally:
        bar.close()
    results = report.to_dict()
    if plan.run is not None:
        save_to_run(plan.run, report)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        print(format_results(results, _))
        if plan.run is not None:
            print(_("saved to {path}; the model card shows them", path=plan.run.path / RESULTS_FILE))
    return 0


class ProgressBar:
    """`what [#####.....] done/total` redrawn on one stderr line; one line per finished step when
    stderr is not a terminal (logs stay readable). Messages are shown in the language of `_`."""

    WIDTH = 24

    def __init__(self, stream: TextIO, _: Gettext):
        self.stream = stream
        self._ = _
        self.tty = stream.isatty()
        self.open_line = False
        self.last_draw = 0.0

    def __call__(self, doing: Phrase, done: int, total: int) -> None:
        what = doing.translate(self._)
        finished = done >= total
        if not self.tty:
            if finished:
                print(self._("{what}: {done}/{total} done", what=what, done=done, total=total), file=self.stream,
                      flush=True)
            return
        now = time.monotonic()
        if not finished and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        filled = self.WIDTH * done // max(total, 1)
        self.stream.write(f"\r{what} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}\x1b[K")
        self.stream.flush()
        self.open_line = True
        if finished:
            self.close()

    def status(self, message: Said) -> None:
        self.close()
        print(in_language(message, self._), file=self.stream, flush=True)

    def close(self) -> None:
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False
