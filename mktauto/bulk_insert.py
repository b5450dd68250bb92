"""Bulk inserts with ``executemany``, shared by the engine's tick and the contact import.

Rows are written with ``executemany`` on a one-row INSERT instead of ``bulk_create()``, because
``bulk_create()`` costs more than the database write at the sizes the tick and the import write.
It needs a model instance per row and runs ``pre_save`` and ``get_db_prep_save`` on every value
of every row. It also assembles multi-row statements, on SQLite at most 999 parameters each
(Django 5.2's ``max_query_params``), which is about 30 rows of Contact. In the benchmarks
(bench/README.md) that took about 70% of a tick (cProfile, 20,000 enrollments), and for the
import longer than parsing and validating the row.

Here a value is prepared only where a backend needs it:

- Values that are the same for every row, such as the tick's time and step or an import's
  defaults, are prepared once.
- Text, integer and id columns take a ``str``, ``int`` or ``None`` unchanged on SQLite and
  PostgreSQL, so such values pass through.
- Other values go through the field's ``get_db_prep_save`` and are cached by type and value, so
  a timestamp is prepared once per BulkInsert. Dicts and lists (JSON) are unhashable and are
  prepared every time.

The backend writes the statement and its conflict clause, as for ``bulk_create()``: ``INSERT OR
IGNORE`` (SQLite) or ``ON CONFLICT DO NOTHING`` (PostgreSQL) to skip conflicting rows, and ``ON
CONFLICT (id) DO UPDATE`` for upserts, which need SQLite 3.24+ or PostgreSQL. Like
``bulk_create()`` this sends no signals. Unlike it, nothing runs ``pre_save``, so ``auto_now``
fields are not stamped, and the ids the database assigns are not read back.

``executemany`` binds one row at a time, so the backends' limits on parameters per statement
(SQLite's ``SQLITE_MAX_VARIABLE_NUMBER``, PostgreSQL's 65,535) apply to one row, not to a
chunk. Chunks of ``CHUNK`` rows bound the memory that the prepared rows of one call take.
"""

from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

from django.db import connection
from django.db.models import Field, Model
from django.db.models.constants import OnConflict

CHUNK = 5000

# Internal types of the fields whose columns take a Python str or int unchanged on SQLite and
# PostgreSQL. A foreign key has the type of the field it points to.
PLAIN_FIELD_TYPES = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "BigIntegerField",
        "CharField",
        "IntegerField",
        "PositiveBigIntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "SmallAutoField",
        "SmallIntegerField",
        "TextField",
    }
)
# Exact types: bool is an int subclass and goes through its field's preparation, because
# PostgreSQL rejects a boolean for an integer column.
PLAIN_VALUE_TYPES = (str, int)


def is_plain(field: Field) -> bool:
    """Return whether ``field``'s column takes str and int values unprepared."""
    value_field = field.target_field if field.is_relation else field
    return value_field.get_internal_type() in PLAIN_FIELD_TYPES


class BulkInsert:
    """An INSERT of rows into one model's table with executemany: plain, skipping conflicts, or an upsert on the primary key.

    A row is a sequence of database values, one per field of ``self.fields`` in that order.
    ``prepare()``, ``values()``, ``row_with()`` and ``row_from()`` build such values from Python
    values. With ``defaults`` (by attname, for every field), ``row_with()`` and ``row_from()`` start
    from a row of those values, prepared once.
    """

    def __init__(
        self,
        model: type[Model],
        field_names: Iterable[str] = (),
        *,
        include_pk: bool = False,
        ignore_conflicts: bool = False,
        update_fields: Iterable[str] = (),
        defaults: dict[str, Any] | None = None,
        chunk_size: int = CHUNK,
    ) -> None:
        if field_names:
            self.fields: list[Field] = [model._meta.get_field(name) for name in field_names]
        else:
            self.fields = [field for field in model._meta.concrete_fields if include_pk or not field.primary_key]
        self.positions = {field.attname: position for position, field in enumerate(self.fields)}
        self.chunk_size = chunk_size
        # Plain columns get values that differ from row to row, so they are neither prepared nor cached.
        self.caches: list[dict[Any, Any] | None] = [None if is_plain(field) else {} for field in self.fields]
        self.default_row = (
            [self.prepare(position, defaults[field.attname]) for position, field in enumerate(self.fields)] if defaults else []
        )

        update_columns = [model._meta.get_field(name).column for name in update_fields]
        on_conflict = None
        if update_columns:
            on_conflict = OnConflict.UPDATE
        elif ignore_conflicts:
            on_conflict = OnConflict.IGNORE
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in self.fields)
        placeholders = ", ".join(["%s"] * len(self.fields))
        suffix = connection.ops.on_conflict_suffix_sql(self.fields, on_conflict, update_columns, [model._meta.pk.column])
        self.sql = (
            f"{connection.ops.insert_statement(on_conflict=on_conflict)} {quote(model._meta.db_table)} "
            f"({columns}) VALUES ({placeholders}) {suffix}"
        ).rstrip()

    def prepare(self, position: int, value: Any) -> Any:
        """Return the database value of ``value`` for the field at ``position``."""
        cache = self.caches[position]
        if cache is None:
            if value is None or type(value) in PLAIN_VALUE_TYPES:
                return value
            return self.fields[position].get_db_prep_save(value, connection)
        if isinstance(value, (dict, list)):
            return self.fields[position].get_db_prep_save(value, connection)

        # The type is part of the key because equal values of other types, such as True and 1 in
        # a JSON field, prepare differently.
        key = (type(value), value)
        prepared = cache.get(key, cache)
        if prepared is cache:
            prepared = self.fields[position].get_db_prep_save(value, connection)
            cache[key] = prepared
        return prepared

    def values(self, instance: Model) -> list[Any]:
        """Return the row of ``instance``'s current values."""
        data = instance.__dict__
        return [self.prepare(position, data[field.attname]) for position, field in enumerate(self.fields)]

    def row_with(self, values: dict[str, Any]) -> list[Any]:
        """Return the default row with ``values`` (by attname) in place of the defaults."""
        return self.row_from(values, values)

    def row_from(self, data: dict[str, Any], names: Iterable[str]) -> list[Any]:
        """Return the default row with the values of ``names`` taken from ``data`` (by attname)."""
        row = self.default_row.copy()
        positions = self.positions
        caches = self.caches
        for name in names:
            position = positions[name]
            value = data[name]
            # The check of prepare(), inlined because an import runs it for every changed cell.
            if caches[position] is None and (value is None or type(value) in PLAIN_VALUE_TYPES):
                row[position] = value
            else:
                row[position] = self.prepare(position, value)
        return row

    def write(self, rows: Iterable[Sequence[Any]]) -> None:
        """Insert ``rows`` of database values with one executemany per chunk of ``chunk_size`` rows."""
        remaining = iter(rows)
        chunk = list(islice(remaining, self.chunk_size))
        if not chunk:
            return

        with connection.cursor() as cursor:
            while chunk:
                cursor.executemany(self.sql, chunk)
                chunk = list(islice(remaining, self.chunk_size))


def insert_rows(
    model: type[Model],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    constants: dict[str, Any],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """Insert ``rows`` (values for ``columns``) with executemany. Other fields get ``constants`` or their default.

    Only the constants are prepared, once, so the values in ``rows`` go to the database as they
    are. The columns must therefore be plain (text, integers, ids) or booleans, which sqlite3
    stores as 0 and 1 and psycopg sends as booleans. The database assigns the primary key.
    """
    if not rows:
        return

    fields = {field.attname: field for field in model._meta.concrete_fields if not field.primary_key}
    unknown = sorted((set(columns) | set(constants)) - set(fields))
    if unknown:
        raise ValueError(f"{model.__name__} has no fields {unknown}. Use attribute names such as step_id.")
    for name in columns:
        field = fields[name]
        if not is_plain(field) and field.get_internal_type() != "BooleanField":
            raise ValueError(f"{model.__name__}.{name} needs preparing for the database. Pass it in constants instead.")
    # bulk_create would stamp these through pre_save, which this path skips.
    stamped = [
        name for name, field in fields.items() if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    ]
    if stamped:
        raise ValueError(f"{model.__name__} has auto_now fields {stamped}, which insert_rows does not set. Use bulk_create.")

    fixed_names = [name for name in fields if name not in columns]
    statement = BulkInsert(model, [*columns, *fixed_names], ignore_conflicts=ignore_conflicts)
    fixed = tuple(
        statement.prepare(position, constants[name] if name in constants else fields[name].get_default())
        for position, name in enumerate(fixed_names, start=len(columns))
    )
    statement.write(row + fixed for row in rows)
