"""Keras models: ``build`` (backbones, the classifier, save and load with its sidecar),
``efficientnet_lite`` (the EfficientNet-Lite builders), ``efficientnet_lite_convert`` and
``torch_legacy`` (ImageNet weights offline: the PyTorch file read, then converted to Keras),
``small_cnn`` and ``ensemble``. May import ``data`` and the layers below it, never
``distributed``.
"""
