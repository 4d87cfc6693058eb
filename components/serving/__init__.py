"""Serving trained models on raw inputs: the pyfunc, the predict CLI's engine, ONNX export.

The package imports nothing itself, so ``ferops predict --help`` and the input check
(:mod:`components.serving.inputs`) run without loading torch or MLflow; import the modules
(``components.serving.pyfunc``, ``.predictor``, ``.settings``, ...) for what they hold.
"""
