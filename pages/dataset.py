"""Dataset: counts, class balance, sample images and an audit for shortcuts and leaks.

No TensorFlow here: the counts, thumbnails and audit read folders, file headers and bytes.
"""

from pathlib import Path

import streamlit as st

from cxr_app import access, charts, display, environment, loaders, texts
from cxr_app import navigation as app_nav
from cxr_core.config import CLASS_NAMES
from cxr_core.data import tables as data
from cxr_core.errors import CXRError

app_nav.ensure_app_navigation()

st.title("Dataset")
root = access.dataset_folder_ui(
    "Dataset folder (train/, val/, test/ each holding NORMAL/ and PNEUMONIA/)",
    "dataset_root",
    environment.default_data_root(),
)
if not root.strip():
    st.info("No dataset found: type the folder of a chest X-ray dataset above.")
    texts.dataset_guide()
    st.stop()
try:
    table = loaders.scan_dataset(root.strip())
except CXRError as error:
    st.error(texts.md(error))
    texts.dataset_guide()
    st.stop()

counts = data.count_table(table)
chart_col, table_col = st.columns([3, 2])
chart_col.plotly_chart(charts.counts_figure(counts))
table_col.markdown(f"**{len(table)} images** in {texts.md(root.strip())}")
table_col.dataframe(display.display_table(counts))

train = table[table["split"] == "train"]
if len(train) and train["label"].nunique() == len(CLASS_NAMES):
    normal, pneumonia = (int((train["label"] == name).sum()) for name in CLASS_NAMES)
    weights = data.class_weights(train["label_index"].to_numpy())
    table_col.markdown(
        f"Imbalance in train: **{pneumonia / normal:.2f} PNEUMONIA per NORMAL** image. "
        f"Class weights training would use: **{data.class_weight_description(weights)}** "
        "(each class then counts equally in the loss)."
    )
else:
    table_col.warning("There is no train split with both classes, so this folder cannot train.")

st.subheader("Sample images")
source = train if len(train) else table
for label in CLASS_NAMES:
    rows = source[source["label"] == label]
    sample = rows.sample(min(6, len(rows)), random_state=0) if len(rows) else rows
    st.markdown(f"**{label}** ({len(rows)} images)")
    try:
        st.image(
            [display.thumbnail(path, 200) for path in sample["path"]],
            width=150,
            alt=[f"{label} chest X-ray sample {Path(p).name}" for p in sample["path"]],
        )
    except OSError:
        st.caption("These files cannot be shown as thumbnails (DICOM or unreadable).")

st.subheader("Audit")
st.caption(
    "Image size, colour mode and format are read from the file headers of up to 500 files per "
    "split and class; every file is hashed to find exact copies."
)
try:
    result = loaders.audit_dataset(root.strip(), len(table))
except CXRError as error:
    st.error(f"The audit could not finish: {texts.md(error)}")
    st.stop()
st.dataframe(display.display_table(result.summary), hide_index=True)
st.caption("Colour modes as Pillow names them: L is 8-bit grey, RGB is colour.")
for warning in result.warnings:
    st.warning(texts.md(warning))
if not result.warnings:
    st.success(
        "Within each split, NORMAL and PNEUMONIA files are stored alike (size, mode, format)."
    )

copies = result.duplicates
if copies.empty:
    st.success("No two files are identical.")
else:
    leaking = int((copies["across_splits"] | copies["conflicting_labels"]).sum())
    (st.warning if leaking else st.info)(
        f"{len(copies)} groups of identical files ({int(copies['files'].sum())} files); "
        f"{leaking} of them span two splits or two labels. Patient-grouped splits keep copies "
        "together, but a copy in both train and test inflates test scores."
    )
    st.dataframe(display.display_table(copies), hide_index=True)

if result.cross_split.empty:
    st.success("No patient has images in more than one split.")
else:
    st.warning(
        f"{len(result.cross_split)} patients have images in more than one split: a model tested "
        "on them has seen the same child in training."
    )
    st.dataframe(display.display_table(result.cross_split), hide_index=True)
