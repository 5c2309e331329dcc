"""The built-in Soft Tuning constraints.

They are registered through the entry-point group ``visnet_hf.constraints`` in the project's
``pyproject.toml``, exactly as a third-party package registers its own.
"""
