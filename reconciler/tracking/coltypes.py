"""Column types that make SQLite and PostgreSQL hand back the same Python values.

SQLite has no time zones and PostgreSQL has native enums we do not want (they make migrations
painful). These decorators keep every timestamp a timezone-aware UTC datetime and every enum
column plain text, on both databases, so no caller has to know which one it talks to.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Generic, TypeVar

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=enum.Enum)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out; naive datetimes are refused.

    A naive datetime is ambiguous (local time? UTC?), and mixing them is how "due" queries go
    wrong by hours, so refusing them at the boundary is cheaper than debugging them later.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: tracking times must be timezone-aware")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            # Stored as text; one fixed offset keeps lexical order equal to time order.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class EnumText(TypeDecorator[E], Generic[E]):
    """An enum stored as its string value in a VARCHAR column."""

    impl = String(32)
    cache_ok = True

    def __init__(self, enum_cls: type[E], length: int = 32) -> None:
        super().__init__(length)
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return str(self.enum_cls(value).value)

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        if value is None:
            return None
        return self.enum_cls(value)
