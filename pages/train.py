"""Train: set up a run in the sidebar, launch it in the background, watch it live."""

import streamlit as st

from cxr_app import environment, loaders, texts
from cxr_app import navigation as app_nav
from cxr_app import train as ui
from cxr_app import train_monitor as monitor
from cxr_core.errors import CXRError, DataError
from cxr_core.runs import jobs

app_nav.ensure_app_navigation()

st.title("Train")
st.caption("Runs train in a separate process: you can leave this page or reload it.")
monitor.show_message()
setup = st.container()  # the run's size and duration, or the dataset guide (filled below)

# The monitor first: it reads the run folders only, so a reload shows it at once.
runs = jobs.list_runs(environment.runs_dir())
st.subheader("Monitor")
monitor.monitor_ui(runs)
if runs:
    st.subheader("Past runs")
    st.dataframe(monitor.runs_table(runs), hide_index=True)

with setup:
    try:
        config = ui.run_config_ui()  # the sidebar; raises when the settings cannot make a run
        st.caption(ui.training_estimate(config, loaders.scan_dataset(config.data_root), runs))
    except DataError as error:  # a folder that is missing, empty or not a dataset
        st.error(f"This folder cannot train a model: {texts.md(error)}")
        st.markdown(texts.DATASET_GUIDE)
    except CXRError as error:
        if ui.dataset_chosen():
            st.warning(f"These settings cannot start a run yet: {texts.md(error)}")
        else:
            st.info(
                "No dataset folder yet: type one under Dataset folder in the sidebar, or start "
                "the app with `CXR_DATA=/path/to/chest_xray`."
            )
            st.markdown(texts.DATASET_GUIDE)
