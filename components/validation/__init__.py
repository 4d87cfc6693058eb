"""Data validation: Great Expectations suites over the manifest and per-sample image facts.

The stage decodes every sample once (:mod:`.facts`), runs GX suites over the manifest, the facts
and the per-class counts (:mod:`.suite`), finds exact duplicates (:mod:`.duplicates`), applies the
exclusion policy and writes a report (:mod:`.report`). :func:`validate_manifest` does it all.
"""

from components.validation.config import ValidateConfig
from components.validation.validate import ValidationResult, validate_manifest

__all__ = ["ValidateConfig", "ValidationResult", "validate_manifest"]
