"""The polyaxonfile specification: models, loading with located errors, resolve, compile, check.

Stages, as Polyaxon has them: parse (`load`) -> resolve (`Resolver`) -> compile and check
(`check`). `validate_paths` runs them all for a set of files.
"""

from reconciler.spec.check import Checked, check
from reconciler.spec.compose import compose
from reconciler.spec.load import Parsed, load, looks_like_polyaxonfile
from reconciler.spec.polyaxonfile import Polyaxonfile
from reconciler.spec.resolve import Reader, Resolver, filesystem_reader
from reconciler.spec.validate import FileResult, check_event_refs, validate_file, validate_paths

__all__ = [
    "Checked",
    "FileResult",
    "Parsed",
    "Polyaxonfile",
    "Reader",
    "Resolver",
    "check",
    "check_event_refs",
    "compose",
    "filesystem_reader",
    "load",
    "looks_like_polyaxonfile",
    "validate_file",
    "validate_paths",
]
