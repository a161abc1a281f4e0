"""The run-time patches of peft, trl, transformers, accelerate and torch: one switchable, recorded layer.

`catalog` says what each kernel does and when it applies, `layer.apply` applies those that
`training.kernels` asks for and whose conditions hold, and the recipe records the names it
returns in the run's events, config.yaml and model card. The other modules are the patches.
"""
