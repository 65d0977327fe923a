"""Go's JSON key matching for request bodies: dockerd's decoder matches an object's keys
to struct fields case-insensitively (docker-py sends exec's `detachKeys` so), msgspec only
exactly.

`miscased` tells, from the raw body and without decoding it, whether any key could name
a field of the body's type in another case; only then does the body take the slow path
(nulls.without_nulls, which also re-keys). A false alarm (a label key that happens to
fold to a field name) only costs that slow path; it cannot change the result.
"""

from __future__ import annotations

import re
from functools import cache

import msgspec.inspect as mi

# A JSON object key made of identifier characters, as every field name is. Outside
# string values, a string followed by a colon is always a key.
_KEY = re.compile(rb'"([A-Za-z0-9_]+)"\s*:')


def miscased(data: bytes, type_) -> bool:
    """Whether `data` has a key that is no field name of `type_` (at any depth) exactly,
    but is one in another case."""
    exact, folded = _names(type_)
    return any(key not in exact and key.lower() in folded for key in _KEY.findall(data))


@cache
def _names(type_) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """The encoded field names of every Struct reachable from `type_`, as they are and lower-cased."""
    names: set[str] = set()
    seen: set[type] = set()

    def walk(info: mi.Type) -> None:
        if isinstance(info, mi.StructType):
            if info.cls in seen:
                return
            seen.add(info.cls)
            for field in info.fields:
                names.add(field.encode_name)
                walk(field.type)
        elif isinstance(info, mi.UnionType):
            for member in info.types:
                walk(member)
        elif isinstance(info, mi.DictType):
            walk(info.value_type)
        elif isinstance(info, (mi.ListType, mi.SetType, mi.VarTupleType)):
            walk(info.item_type)

    walk(mi.type_info(type_))
    return frozenset(n.encode() for n in names), frozenset(n.lower().encode() for n in names)

