"""CXR Pneumonia Lab: ``streamlit run streamlit_app.py``.

Builds the navigation over the pages in ``pages/``; every page is a short script that calls
``cxr_core`` through the cached helpers of ``app_support``. Research demo only.
"""

import streamlit as st

from app_support import DISCLAIMER

st.set_page_config(
    page_title="CXR Pneumonia Lab", page_icon=":material/pulmonology:", layout="wide"
)

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/diagnose.py", title="Diagnose", icon=":material/image_search:"),
    st.Page("pages/dataset.py", title="Dataset", icon=":material/dataset:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
]
page = st.navigation(pages)
st.sidebar.caption(DISCLAIMER)
page.run()
