"""Devices and several machines: ``devices`` (GPUs, mixed precision, XLA),
``cluster`` (TF_CONFIG, the agreed stop, broadcasts) and ``multiworker`` (the strategy, sharding,
batch-norm averaging). May import ``data`` and the layers below it.
"""
