"""The model card's front matter: what the Hub reads from it."""

from __future__ import annotations

from engine.config import RunConfig, apply_overrides
from engine.model_card import render_model_card


def _front(card: str) -> dict:
    import yaml

    return yaml.safe_load(card.split("---\n")[1])


def test_the_card_names_its_data_and_objective() -> None:
    from_hub = apply_overrides(RunConfig(), ["data.path=hf:my-org/manuals:train", "training.objective=dpo"])
    front = _front(render_model_card("aligned", from_hub, {}, trainer="trl.DPOTrainer"))
    assert front["datasets"] == ["my-org/manuals"]  # the Hub id, which the Hub links to the dataset
    assert front["tags"] == ["tanren", "dpo", "lora"] and front["trainer"] == "trl.DPOTrainer"
    assert front["hyperparameters"]["objective"] == "dpo" and front["hyperparameters"]["beta"] == 0.1
    from_file = apply_overrides(RunConfig(), ["data.path=/data/ja/chat.jsonl"])
    front = _front(render_model_card("sft", from_file, {}))
    assert front["datasets"] == ["chat.jsonl"] and "beta" not in front["hyperparameters"]
