"""Pixels in, pixels out: everything between a file and the model's input.

``decode`` (a file's bytes, its format decided by content: ``read_image``), ``raster`` (JPEG and
PNG) and ``dicom`` (DICOM) to a bounded greyscale array, ``decoded`` (what they share: the
``DecodedImage`` result, the size limits and the refusal sentences), ``strips`` (reduction
without whole-image float copies), ``patient_age`` (a DICOM age against the training ages),
``preprocess`` (the model's input), ``contrast`` (CLAHE), ``corruptions`` (the stress suite's
image corruptions) and ``scoring`` (the one decode-and-preprocess path behind every score). May
import the top-level modules and ``stats``.
"""
