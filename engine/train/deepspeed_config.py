"""The DeepSpeed config a run trains with (training.distributed: deepspeed), written into its run folder.

transformers hands this file to accelerate's DeepSpeed plugin. The values the trainer's arguments
already decide (micro-batch, accumulation, clipping, precision, the optimizer's settings) are
left "auto" so that the trainer fills them in, and the two can never disagree; what is set here is
what only DeepSpeed knows: the ZeRO stage and where training.offload puts things.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.config import TrainingConfig

FILE_NAME = "deepspeed.json"
ZERO_STAGE = 3  # weights, gradients and optimizer state sharded (what training.distributed: deepspeed means)


def deepspeed_config(training: TrainingConfig) -> dict[str, Any]:
    zero: dict[str, Any] = {
        "stage": ZERO_STAGE, "overlap_comm": True, "contiguous_gradients": True, "reduce_bucket_size": "auto",
        "stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto",
        # the final save gathers the whole model (the adapter's tensors) onto rank 0, as one folder
        "stage3_gather_16bit_weights_on_model_save": True,
    }
    if training.offload in ("optimizer", "all"):
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if training.offload == "all":
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": zero,
    }


def write_deepspeed_config(training: TrainingConfig, run_path: Path) -> Path:
    """Write the run's DeepSpeed config into its folder (the trainer reads it from there); returns its path."""
    path = run_path / FILE_NAME
    path.write_text(json.dumps(deepspeed_config(training), indent=2) + "\n", encoding="utf-8")
    return path
