"""Statistics on scores: NumPy and scikit-learn only, no TensorFlow, no files.

``metrics`` (ROC/PR AUC, sensitivity, specificity, ECE, bootstrap intervals, the evaluation
report), ``operating_point`` (threshold rules), ``calibration`` (Platt and temperature scaling)
and ``conformal`` (class-conditional prediction sets, UNCERTAIN). May import the top-level
``errors`` and ``config`` only.
"""
