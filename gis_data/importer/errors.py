"""What the import and export tell the user about input they can fix, in one sentence each.

Every class is a :class:`twin.errors.TwinError`, so the CLI prints the
message alone and exits with status 1.
"""

from __future__ import annotations

from twin.errors import TwinError


class SourceError(TwinError):
    """A file the import cannot use."""


class UnreadableSourceError(SourceError):
    """The file is missing, or no reader understands it."""


class UnknownCRSError(SourceError):
    """A layer does not say which coordinate reference system its coordinates are in."""


class MappingError(SourceError):
    """The mapping file (or a --layer option) names something the source does not have."""


class CommunityError(TwinError):
    """The community named on the command line does not fit what the twin holds."""
