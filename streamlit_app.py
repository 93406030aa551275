"""CXR Pneumonia Lab: ``streamlit run streamlit_app.py``.

The page list, the navigation and the error guard live in ``cxr_app.navigation``; every page
in ``pages/`` is a short script that calls ``cxr_core`` through the app's shared parts
(``cxr_app.catalog``, ``cxr_app.loaders``, ...) and its own page's parts (``cxr_app.diagnose``,
``cxr_app.evaluate``, ``cxr_app.train``). Research demo only.

Unexpected errors are logged server-side with a short id, and the page shows only that id
(``client.showErrorDetails = "none"`` in ``.streamlit/config.toml`` hides what is not caught).
"""

from cxr_app.navigation import run_app

run_app()
