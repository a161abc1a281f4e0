"""The training objectives and the trl trainer behind each: SFT, DPO, KTO and ORPO.

Each objective names its trainer and its config class (trl's; ORPO's is still under
`trl.experimental`, which the run's record and model card say), the data it learns from, and
the arguments only it takes; the arguments every objective shares are built once, by the recipe.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from engine.config import RunConfig
from engine.data.kinds import OBJECTIVE_KINDS
from engine.phrases import Phrase, phrase


@dataclass(frozen=True)
class Objective:
    name: str
    trainer: str             # "module:Class" of the trainer
    arguments: str           # "module:Class" of its config (a TrainingArguments)
    experimental: bool = False
    reference: bool = True   # whether the loss compares with a reference model

    @property
    def kind(self) -> str:
        """The data it learns from: engine.data.kinds' SFT, PAIRS or RATINGS."""
        return OBJECTIVE_KINDS[self.name]

    @property
    def preference(self) -> bool:
        return self.name != "sft"

    def trainer_class(self):
        return _load(self.trainer)

    def arguments_class(self):
        return _load(self.arguments)

    def describe(self) -> str:
        """The trainer as the record and the card show it: "trl.DPOTrainer", "... (experimental)"."""
        module, name = self.trainer.split(":")
        return f"{module}.{name}" + (" (experimental)" if self.experimental else "")

    def extra_arguments(self, config: RunConfig) -> dict:
        """What this objective's config takes beyond the shared arguments."""
        if not self.preference:
            return {
                "packing": config.training.packing, "padding_free": True,
                # examples are already cut at max_length; without packing trl refuses a max_length it would not enforce
                "max_length": config.data.max_length if config.training.packing else None,
                "dataset_kwargs": {"skip_prepare_dataset": False},
            }
        extra = {"beta": config.training.beta, "max_length": config.data.max_length}
        if self.reference:
            # full fine-tuning: the reference log-probabilities, computed once before the first step, cost
            # two numbers per example where a reference copy of the model costs its whole size again
            extra["precompute_ref_log_probs"] = uses_precomputed_reference(config)
        return extra


OBJECTIVES = {
    "sft": Objective("sft", "trl:SFTTrainer", "trl:SFTConfig", reference=False),
    "dpo": Objective("dpo", "trl:DPOTrainer", "trl:DPOConfig"),
    "kto": Objective("kto", "trl:KTOTrainer", "trl:KTOConfig"),
    "orpo": Objective("orpo", "trl.experimental.orpo:ORPOTrainer", "trl.experimental.orpo:ORPOConfig",
                      experimental=True, reference=False),
}


def objective_of(config: RunConfig) -> Objective:
    return OBJECTIVES[config.training.objective]


def uses_precomputed_reference(config: RunConfig) -> bool:
    return config.adapter.method == "full"


def reference_line(config: RunConfig) -> Phrase | None:
    """What the run compares its answers with, for the start message; None when nothing (SFT, ORPO)."""
    objective = objective_of(config)
    if not objective.reference:
        return None
    if uses_precomputed_reference(config):
        return phrase("reference: log-probabilities of the base model, computed once before the first step "
                      "(less memory than a second copy of the model)")
    if config.adapter.init_adapter:
        return phrase("reference: the starting adapter {adapter}, kept frozen as a second adapter (the model it "
                      "continues from, not the raw base)", adapter=config.adapter.init_adapter)
    return phrase("reference: the base model with the adapter switched off (one copy of the base)")


def _load(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)
