"""Training: thin recipes over trl's SFTTrainer and peft, run as detached processes."""
