"""Inverted-dropout masks (chapter 12).

The twins (formula: ``kernels/contract.py``, family "dropout"):
``reference.py`` (the definition), ``cpu.py`` (NumPy's generator, exactly as
``F.dropout`` drew its masks), ``cuda.py`` (xoroshiro128+ generators on the
device). The CPU and GPU twins draw different masks from the same seed:
each is reproducible under ``manual_seed`` on its own device.
"""
