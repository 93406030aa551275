"""Statistics on scores: NumPy and scikit-learn only, no TensorFlow, no files.

``metrics`` (ROC/PR AUC, sensitivity, specificity, ECE, threshold choice, the evaluation
report), ``bootstrap`` (percentile bootstrap intervals), ``curves`` (ROC, PR and calibration
curves, metrics over a threshold grid), ``inputs`` (the label and score checks they share),
``operating_point`` (threshold rules), ``calibration`` (Platt and temperature scaling)
and ``conformal`` (class-conditional prediction sets, UNCERTAIN). May import the top-level
``errors`` and ``config`` only.
"""
