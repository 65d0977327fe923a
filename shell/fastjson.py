"""Compact JSON for the one-shot client, through CPython's `_json` accelerator.

`import json` costs the client ~9 ms of its ~25 ms start-up, nearly all of it `re` (and
`enum` below it), which json's Python layer needs only for its pure-Python fallbacks and
for skipping whitespace. The C scanner and encoder it wraps need neither, so they are
driven directly here. Indented output (`inspect`) still imports `json`, once, where it is
printed. On a Python without `_json` this module is `json` with the same two calls.
"""

try:
    from _json import encode_basestring, encode_basestring_ascii, make_encoder, make_scanner
except ImportError:  # another implementation: the standard module does the same job
    make_scanner = None

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _DecoderSettings:
    """The attributes the C scanner reads from a `json.JSONDecoder` (its defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _unserializable(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


if make_scanner is not None:
    _scan = make_scanner(_DecoderSettings())

    def loads(data: bytes | str):
        """One JSON document (bytes are UTF-8); ValueError names the offset of bad input."""
        text = data.decode() if isinstance(data, (bytes, bytearray)) else data
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except StopIteration as exc:
            raise ValueError(f"invalid JSON at offset {exc.value}") from None
        if text[end:].strip(_WHITESPACE):
            raise ValueError(f"extra data after JSON at offset {end}")
        return value

    def dumps(value, *, ascii: bool = True, sort_keys: bool = False) -> str:
        """Compact JSON (`,` and `:` without spaces); `ascii=False` keeps non-ASCII text as is."""
        encode = make_encoder({}, _unserializable, encode_basestring_ascii if ascii else encode_basestring,
                              None, ":", ",", sort_keys, False, True)
        return "".join(encode(value, 0))
else:
    import json

    def loads(data: bytes | str):
        """One JSON document (bytes are UTF-8)."""
        return json.loads(data)

    def dumps(value, *, ascii: bool = True, sort_keys: bool = False) -> str:
        """Compact JSON; `ascii=False` keeps non-ASCII text as is."""
        return json.dumps(value, separators=(",", ":"), ensure_ascii=ascii, sort_keys=sort_keys)
