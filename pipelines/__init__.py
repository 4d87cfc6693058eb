"""ferops pipelines: the stages of ``dvc.yaml`` and the ``ferops`` command line.

Every process they start caps NumPy, PyTorch, oneDNN and OpenCV at AVX2 before any of them
loads (:mod:`components.isa`), so a stage gives the same bytes on any AVX2 machine.
"""

from components.isa import pin_instruction_set

pin_instruction_set()
