"""Devices and several machines: ``devices`` (GPUs, mixed precision, XLA),
``cluster`` (TF_CONFIG, the agreed stop, broadcasts), ``prepared`` (a run's tables and datasets)
and ``multiworker`` (the strategy, sharding, batch-norm averaging). May import ``data`` and the
layers below it.
"""
