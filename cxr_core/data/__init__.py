"""Datasets: ``tables`` (scan of the Kaggle layout, patients, patient-grouped splits,
the tf.data pipeline), ``audit``, ``augment`` (training augmentation) and ``feedback`` (a
clinician's answers saved as a dataset). May import the layers below it (top-level modules,
``stats``, ``imaging``, ``explain``, ``runs``).
"""
