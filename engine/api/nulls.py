"""Go's JSON semantics for `null` in request bodies: a field sent as null keeps its zero
value, as dockerd decodes it (`"Healthcheck": {"Timeout": null}`, `"Gateway": null`).

msgspec refuses null for a field that is not Optional; `without_nulls` drops exactly
those nulls, guided by the body's type, so that the field takes its default. A null that
means something is kept: in an Optional field, and as a dict's value
(`"PortBindings": {"80/tcp": null}` is a port exposed and not published).

The same walk re-keys a struct's fields as Go matches them, case-insensitively
(`detachKeys` is `DetachKeys`): engine/api/keycase.py sends such bodies here.
"""

from __future__ import annotations

from typing import Any

import msgspec.inspect as mi


def without_nulls(value: Any, info: mi.Type) -> Any:
    """`value` (decoded JSON) with the nulls of non-Optional Struct fields removed and
    their keys in the fields' case, at any depth."""
    if isinstance(info, mi.UnionType):
        member = next((t for t in info.types if _holds(t, value)), None)
        return value if member is None else without_nulls(value, member)
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f.type for f in info.fields}
        folded = {name.lower(): name for name in fields}
        out = {}
        for key, item in value.items():
            if key not in fields:  # Go's decoder: an exact match first, else any case
                key = folded.get(key.lower(), key)
            kind = fields.get(key)
            if kind is None:  # not a field: msgspec ignores it
                out[key] = item
            elif item is not None:
                out[key] = without_nulls(item, kind)
            elif _nullable(kind):
                out[key] = None
        return out
    if isinstance(info, mi.DictType) and isinstance(value, dict):
        return {key: item if item is None else without_nulls(item, info.value_type) for key, item in value.items()}
    if isinstance(info, (mi.ListType, mi.SetType, mi.VarTupleType)) and isinstance(value, list):
        return [without_nulls(item, info.item_type) for item in value]
    return value


def _nullable(info: mi.Type) -> bool:
    if isinstance(info, mi.UnionType):
        return any(_nullable(t) for t in info.types)
    return isinstance(info, (mi.NoneType, mi.AnyType))


def _holds(info: mi.Type, value: Any) -> bool:
    """Whether a union's member `info` is the one a JSON object or array `value` decodes as."""
    if isinstance(value, dict):
        return isinstance(info, (mi.StructType, mi.DictType))
    if isinstance(value, list):
        return isinstance(info, (mi.ListType, mi.SetType, mi.VarTupleType))
    return False
