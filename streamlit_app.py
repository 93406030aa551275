"""CXR Pneumonia Lab: ``streamlit run streamlit_app.py``.

The page list, the navigation and the error guard live in ``app_nav``; every page in ``pages/``
is a short script that calls ``cxr_core`` through the cached helpers of ``app_support`` and
its own page's parts (``app_diagnose``, ``app_evaluate``, ``app_train``).
Research demo only.

Unexpected errors are logged server-side with a short id, and the page shows only that id
(``client.showErrorDetails = "none"`` in ``.streamlit/config.toml`` hides what is not caught).
"""

from cxr_app.navigation import run_app

run_app()
