"""Training a model: ``train`` (one run from start to finish: lock, cancel, failure, resume),
``phases`` (the data and one ``fit`` per phase), ``monitor`` (the run's shared context and the
callbacks that write its status and history), ``finalize`` (threshold, calibration, stress suite
and input check after training) and ``run_settings`` (settings from the command line and the
app). May import every layer below it; only the command line imports it.
"""
