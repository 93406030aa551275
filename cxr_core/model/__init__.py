"""Keras models: ``build`` (backbones, the classifier, save and load with its
sidecar), ``efficientnet_lite`` and ``torch_legacy`` (ImageNet weights offline), ``small_cnn``
and ``ensemble``. May import ``data`` and the layers below it, never ``distributed``.
"""
