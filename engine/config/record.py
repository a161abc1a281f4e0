"""What a launch of a run trained with beyond its settings: the library versions, the kernels applied
and the trainer.

It is kept in the run's config.yaml under `recorded:` (and in the adapter's training_config.yaml),
so that the file says how its result was made. tanren writes it at the start of each launch; when
the file is read as a config (`tanren train --config runs/x/config.yaml`) the section is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RECORD_KEY = "recorded"
RECORD_COMMENT = "# written by tanren at each launch; ignored when this file is read as a config"


@dataclass(frozen=True)
class LaunchRecord:
    versions: Mapping[str, str] = field(default_factory=dict)  # engine.versions.library_versions()
    kernels: tuple[str, ...] = ()
    trainer: str = ""  # the trl trainer, marked when experimental (engine.train.objectives)
    deepspeed: Mapping[str, Any] = field(default_factory=dict)  # the config generated for DeepSpeed, if it trains

    def to_dict(self) -> dict[str, Any]:
        data = {"versions": dict(self.versions), "kernels": list(self.kernels), "trainer": self.trainer}
        return {**data, "deepspeed": dict(self.deepspeed)} if self.deepspeed else data

    @classmethod
    def from_dict(cls, data: Any) -> LaunchRecord | None:
        """The record a config file holds, or None when it holds none (or one written by hand wrongly)."""
        if not isinstance(data, Mapping):
            return None
        versions, kernels = data.get("versions") or {}, data.get("kernels") or []
        if not isinstance(versions, Mapping) or not isinstance(kernels, list):
            return None
        deepspeed = data.get("deepspeed") or {}
        return cls({str(k): str(v) for k, v in versions.items()}, tuple(str(k) for k in kernels),
                   str(data.get("trainer") or ""), dict(deepspeed) if isinstance(deepspeed, Mapping) else {})
