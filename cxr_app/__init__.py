"""cxr_app: TODO."""
