"""What moved a score, drawn: ``cam`` (Grad-CAM and CAM maps, the last conv layer),
``heatmap`` (overlays, the colour bar), ``verdict`` (score against threshold, the scale, the
caveats) and ``report`` (the PNG report). May import the top-level modules, ``stats`` and
``imaging``.
"""
