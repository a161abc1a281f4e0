"""accelerate's FSDP2 engine on CPU processes (gloo), where accelerate enables it only on accelerators.

accelerate's `AcceleratorState` turns a given FSDP plugin on only for GPU-like distributed states
(MULTI_GPU, MULTI_XPU, ...); on CPU processes it keeps MULTI_CPU and the Trainer then wraps the
model in DDP: `training.distributed: fsdp` would silently train unsharded. torch's `fully_shard`
itself runs on CPU tensors over gloo, so here the state takes the plugin on MULTI_CPU too, doing
what accelerate does for a GPU state. Everything after that is accelerate's and transformers' own
FSDP2 path: `fully_shard` of each transformer layer, DTensor-aware gradient clipping, sharded
checkpoints through torch.distributed.checkpoint, the full state dict gathered for the final save.
"""

from __future__ import annotations


def train_fsdp2_on_cpu(state_class) -> bool:
    """Let `state_class` (accelerate's AcceleratorState) take an FSDP plugin on CPU processes; returns True."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    if getattr(state_class, "_tanren_cpu_fsdp", False):  # one process trains once, but tests build several
        return True
    init = state_class.__init__

    def init_with_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs) -> None:
        init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is None or self.distributed_type != DistributedType.MULTI_CPU:
            return
        # the lines accelerate runs for a GPU state given a plugin (accelerate/state.py, AcceleratorState)
        self.distributed_type = DistributedType.FSDP
        if self._mixed_precision != "no":
            fsdp_plugin.set_mixed_precision(self._mixed_precision)
        self.fsdp_plugin = fsdp_plugin
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    state_class.__init__ = init_with_fsdp_on_cpu
    state_class._tanren_cpu_fsdp = True
    return True
