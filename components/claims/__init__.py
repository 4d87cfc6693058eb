"""The patents' testable claims (methods.md section 7), measured by the platform's own stages.

``claims/params.yaml`` declares data variants (a recipe plus overrides, optionally reusing
another variant's earlier stages), arms (an architecture on a variant with its overrides)
and claims (comparisons of two arms, or two metrics of one arm, on the same seeds).
:mod:`components.claims.spec` reads and checks that file and composes each stage's params
exactly as ``dvc exp run -S recipe=... -S ...`` would; :mod:`components.claims.stats` holds
the paired statistics and verdict rule; :mod:`components.claims.report` turns the arms'
evaluate outputs into ``claims/report.md``, ``claims/results.json`` and plots. The stages
themselves (ingest ... preprocess, train, evaluate) are the pipeline's, called by
``pipelines/claims/``.
"""
