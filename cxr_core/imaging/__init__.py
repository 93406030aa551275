"""Pixels in, pixels out: everything between a file and the model's input.

``decode`` (JPEG, PNG and DICOM to a bounded greyscale array), ``strips`` (reduction without
whole-image float copies), ``patient_age`` (a DICOM age against the training ages),
``preprocess`` (the model's input), ``contrast`` (CLAHE), ``corruptions`` (the stress suite's
image corruptions) and ``scoring`` (the one decode-and-preprocess path behind every score). May
import the top-level modules and ``stats``.
"""
