"""Training a model: ``train`` (the two phases, callbacks, resume), ``finalize``
(threshold, calibration, stress suite and input check after training) and ``run_settings``
(settings from the command line and the app). May import every layer below it; only the
command line imports it.
"""
