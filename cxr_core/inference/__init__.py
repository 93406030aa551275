"""A verdict for one image: ``predictor`` (``Predictor``, ``Prediction``: score,
input check, prediction set and heatmaps from one pass), ``input_check`` (the feature-distance
gate), ``population`` (typical / unusual / refused) and ``serving`` (the shared micro-batching
worker). May import ``model`` and the layers below it.
"""
