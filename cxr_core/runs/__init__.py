"""A training run on disk and its life: ``files`` (run folder, status, history; typed
reads), ``guard`` (locks, process identity, stop requests), ``jobs`` (launch, cancel, resume in
the background), ``plan`` and ``progress`` (stages and time left), ``policy`` (deployment
limits) and ``app_settings`` (the app's saved defaults). May import the top-level modules,
``stats``, ``imaging`` and ``explain``.
"""
