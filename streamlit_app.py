"""CXR Pneumonia Lab: ``streamlit run streamlit_app.py``.

Builds the navigation over the pages in ``app_pages/``; every page is a short script that calls
``cxr_core`` through the cached helpers of ``app_support``. The folder is not named ``pages/``:
beside the main script, that name switches a fresh Streamlit server into its older multipage
mode, whose first page view is blank. Research demo only.
"""

import streamlit as st

from app_support import DISCLAIMER

st.set_page_config(
    page_title="CXR Pneumonia Lab", page_icon=":material/pulmonology:", layout="wide"
)

pages = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/diagnose.py", title="Diagnose", icon=":material/image_search:"),
    st.Page("app_pages/dataset.py", title="Dataset", icon=":material/dataset:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
]
page = st.navigation(pages)
st.sidebar.caption(DISCLAIMER)
page.run()
