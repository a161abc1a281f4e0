"""What each process holds of the model under FSDP, recorded once the trainer has sharded it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from engine.errors import TanrenError
from engine.events import EventLog, Log
from engine.phrases import phrase

SHARDING_FOLDER = "sharding"  # in the run folder: rank<N>.json


def shard_layout(model) -> dict[str, Any]:
    """The FSDP units of `model` and, for each sharded tensor, the shape this process holds and the full one."""
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    return {
        "units": [name or "(root)" for name, module in model.named_modules() if isinstance(module, FSDPModule)],
        "tensors": {name: {"local": list(p.to_local().shape), "full": list(p.shape)}
                    for name, p in model.named_parameters() if isinstance(p, DTensor)},
    }


class ShardingRecord(TrainerCallback):
    """Write what this process holds (sharding/rank<N>.json) when training begins, and refuse to go
    on unsharded: FSDP asked for must never train as plain data parallelism."""

    def __init__(self, run_path: Path, events: EventLog):
        self.folder = run_path / SHARDING_FOLDER
        self.events = events

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        layout = shard_layout(model)
        if not layout["units"]:
            raise TanrenError(phrase("training.distributed: fsdp, but the trainer did not shard the model"),
                              where="training.distributed",
                              hint=phrase("train with ddp, and report this with `tanren version`'s output"))
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(layout, indent=1),
                                                                            encoding="utf-8")
        self.events.append(Log.said(phrase(
            "fsdp: {count} units sharded over {processes} processes ({units}); what each holds: {folder}/",
            count=len(layout["units"]), processes=os.environ.get("WORLD_SIZE"), units=", ".join(layout["units"]),
            folder=SHARDING_FOLDER)))
        return control
