"""Git source adapter: fetch a tracked ref, decide whether it may be applied, read files at a commit.

Everything else in the reconciler sees commits only through these names.
"""

from reconciler.source.advance import Advance, Relation, Verdict, decide
from reconciler.source.backoff import Backoff
from reconciler.source.errors import PermanentSourceError, SourceError, TransientSourceError
from reconciler.source.git import GitSource, full_ref
from reconciler.source.types import ChangeSet, FilesAt, Revision, SkippedFile

__all__ = [
    "Advance",
    "Backoff",
    "ChangeSet",
    "FilesAt",
    "GitSource",
    "PermanentSourceError",
    "Relation",
    "Revision",
    "SkippedFile",
    "SourceError",
    "TransientSourceError",
    "Verdict",
    "decide",
    "full_ref",
]
