"""cxr_app: the app's parts, called by ``streamlit_app.py`` and the thin scripts of ``pages/``.

Shared by every page:

- ``navigation``: the page list, deep links and the error guard (imports ``runner_patch``).
- ``runner_patch``: Streamlit's script runner keeps the Keras session between runs.
- ``access``: who may do what (the open mode, the administrator, visitors' limits).
- ``environment``: the folders of models, runs and the dataset (``CXR_MODELS_DIR``, ...).
- ``catalog``: model discovery, the model in use, the sidebar's model picker.
- ``loaders``: cached loaders (models, predictors, an upload's analysis, dataset scans and
  audits, the GPUs).
- ``serving``: the process's model pool, the background warm-up, the loading state.
- ``models``: everyone's default model, "Use this model" after a comparison.
- ``state``: settings kept in the URL, the dataset folder shared by the pages.
- ``texts``, ``display``, ``charts``: shared words (escaped Markdown, the disclaimer, the dataset
  guide), tables and thumbnails, Plotly figures.

One page's parts: ``home``; ``diagnose`` (the upload), ``results`` (what it shows);
``evaluate``, ``gallery`` (its predictions), ``faithfulness``, ``site`` (UNCERTAIN answers,
fitting to a site); ``train`` (the sidebar and its defaults), ``train_monitor`` (the run
monitor, past runs).
"""
