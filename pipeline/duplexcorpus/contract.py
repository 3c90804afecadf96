"""The data contract: load the versioned schemas in `schemas/` and check artifacts against them.

Tables are Arrow (parquet on disk); the JSON inside each shard sample is JSON Schema. The schema
files are the source of truth; this module only interprets them.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq

from duplexcorpus.resources import read_text

SCHEMA_VERSION = "1.2.0"  # of the shard sample JSON; each table file carries its own minor version (recordings 1.3.0, events 1.4.0)
SCHEMA_DIR = ("schemas", "v1")  # inside the package (duplexcorpus.resources)
TABLES = ("recordings", "segments", "words", "events", "quarantine")

_PRIMITIVES = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}


class ContractError(ValueError):
    """An artifact does not match the data contract."""


def _arrow_type(spec: Any) -> pa.DataType:
    if isinstance(spec, str):
        return _PRIMITIVES[spec]
    if "list" in spec:
        return pa.list_(_arrow_type(spec["list"]))
    if "struct" in spec:
        return pa.struct([_arrow_field(f) for f in spec["struct"]])
    raise ContractError(f"unknown type spec {spec!r}")


def _arrow_field(spec: Mapping[str, Any]) -> pa.Field:
    return pa.field(spec["name"], _arrow_type(spec["type"]), nullable=spec.get("nullable", True))


@lru_cache(maxsize=None)
def table_schema(table: str) -> pa.Schema:
    """The Arrow schema of one output table, with the contract version in its metadata."""
    spec = json.loads(read_text(*SCHEMA_DIR, f"{table}.arrow.json"))
    return pa.schema(
        [_arrow_field(f) for f in spec["fields"]],
        metadata={"duplexcorpus.schema": table, "duplexcorpus.schema_version": spec["version"]},
    )


@lru_cache(maxsize=None)
def sample_schema() -> dict:
    return json.loads(read_text(*SCHEMA_DIR, "sample.schema.json"))


def to_table(table: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a table from row dicts; raises ContractError on a missing/extra column or a bad type."""
    schema = table_schema(table)
    rows = list(rows)
    names = set(schema.names)
    for i, row in enumerate(rows):
        if set(row) != names:
            raise ContractError(
                f"{table} row {i}: missing {sorted(names - set(row))}, unexpected {sorted(set(row) - names)}"
            )
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ContractError(f"{table}: {err}") from err


def validate_table(table: str, data: pa.Table) -> None:
    """Check column names, types and nullability of a table against the contract."""
    expected = table_schema(table)
    if data.schema.names != expected.names:
        raise ContractError(f"{table}: columns {data.schema.names} != contract {expected.names}")
    for field in expected:
        got = data.schema.field(field.name)
        if not got.type.equals(field.type):
            raise ContractError(f"{table}.{field.name}: type {got.type} != contract {field.type}")
        if not field.nullable and data.column(field.name).null_count:
            raise ContractError(f"{table}.{field.name}: nulls in a non-nullable column")


def read_table(path: str | Path, table: str) -> pa.Table:
    data = pq.read_table(path)
    validate_table(table, data)
    return data


def write_table(path: str | Path, table: str, data: pa.Table) -> None:
    """Validate, then write atomically (temp file + rename) so readers never see half a table."""
    from duplexcorpus.storage import atomic_path

    validate_table(table, data)
    with atomic_path(Path(path)) as tmp:
        pq.write_table(data, tmp)


def validate_sample(obj: Mapping[str, Any]) -> None:
    """Validate the JSON member of a shard sample; raises ContractError with the failing path."""
    try:
        jsonschema.validate(obj, sample_schema())
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path)
        raise ContractError(f"sample {obj.get('recording_id')!r} at /{where}: {err.message}") from err
