"""wasinn-jupyter: a Jupyter workbench for wasi-nn. The Jupyter-free core is :mod:`wasinn_jupyter.host`."""

__version__ = "0.1.0"
