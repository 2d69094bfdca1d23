"""The JSON codec: one cattrs converter for every model and wire message.

Datetimes travel as ISO 8601 strings, money (`Decimal`) as strings so no cent is lost to
floating point, bytes as base64, and a `StorageRef` as `{"ref": "kv://ns/key", "size",
"sha256", "media_type"}` (or `{"inline": "<base64>", ...}` for inline data).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, TypeVar, get_origin

import attrs
import cattrs
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    is_mutable_sequence,
    is_sequence,
    list_structure_factory,
)
from cattrs.gen import make_dict_structure_fn
from cattrs.preconf.json import make_converter

from .._exceptions import BadInputError
from ..models.enums import StorageScheme
from ..models.storage_ref import StorageRef
from .messages import Binding, StageInput

__all__ = [
    "converter",
    "dumps",
    "from_json",
    "json_text",
    "loads",
    "structure",
    "to_json",
    "to_signed_json",
    "unstructure",
]

T = TypeVar("T")


def _structure_decimal(value: Any, _: type) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def _unstructure_ref(ref: StorageRef) -> dict[str, Any]:
    body: dict[str, Any] = {"size": ref.size, "sha256": ref.sha256, "media_type": ref.media_type}
    if ref.scheme is StorageScheme.INLINE:
        assert ref.data is not None
        body["inline"] = base64.b64encode(ref.data).decode("ascii")
    else:
        body["ref"] = ref.uri
    return body


def _structure_ref(value: Any, _: type) -> StorageRef:
    if isinstance(value, str):
        return StorageRef.parse(value)
    if not isinstance(value, dict):
        raise ValueError("a storage reference is an object or a kv:// / r2:// string")
    media_type = str(value.get("media_type", "application/octet-stream"))
    if "inline" in value:
        try:
            data = base64.b64decode(value["inline"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise ValueError("inline data is not valid base64") from exc
        # Keep the sender's size and digest: BlobStore.get verifies them, so inline bytes
        # altered in transit are caught instead of silently re-hashed. A signed request may
        # leave them out (its signature covers the bytes): they are worked out here.
        sha256 = value.get("sha256")
        return StorageRef(
            StorageScheme.INLINE,
            size=int(value.get("size", len(data))),
            sha256=str(sha256) if sha256 is not None else hashlib.sha256(data).hexdigest(),
            data=data,
            media_type=media_type,
        )
    ref = StorageRef.parse(value["ref"])
    return StorageRef(
        ref.scheme,
        ref.namespace,
        ref.key,
        size=int(value.get("size", 0)),
        sha256=str(value.get("sha256", "")),
        media_type=media_type,
    )


def _strict(kind: type, *also: type) -> Any:
    """A structure hook that accepts only JSON values of `kind` (no coercion: `"false"` is not
    a bool and `1.5` is not an int). Subclasses (StrEnums) are built from the checked value."""
    accepted = (kind, *also)

    def hook(value: Any, target: type) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {kind.__name__}, got a boolean")
        if not isinstance(value, accepted):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return target(value)

    return hook


def _shaped(shape: type, inner: Any) -> Any:
    def hook(value: Any, target: type) -> Any:
        if not isinstance(value, shape):
            raise TypeError(f"expected a JSON {'array' if shape is list else 'object'}")
        return inner(value, target)

    return hook


def _default_sequence_hook(conv: cattrs.Converter, target: Any) -> Any:
    if get_origin(target) is tuple:
        return homogenous_tuple_structure_factory(target, conv)
    return list_structure_factory(target, conv)


def _make(*, forbid_extra_keys: bool = False) -> cattrs.Converter:
    conv = make_converter(forbid_extra_keys=forbid_extra_keys)
    for kind, also in ((str, ()), (int, ()), (float, (int,)), (bool, ())):
        conv.register_structure_hook(kind, _strict(kind, *also))
    # Lists and objects must arrive as lists and objects: a string is not a list of letters.
    conv.register_structure_hook_factory(
        lambda t: is_sequence(t) or is_mutable_sequence(t),
        lambda t: _shaped(list, _default_sequence_hook(conv, t)),
    )
    conv.register_structure_hook_factory(
        attrs.has,
        lambda t: _shaped(dict, make_dict_structure_fn(t, conv)),
    )
    conv.register_unstructure_hook(Decimal, str)
    conv.register_structure_hook(Decimal, _structure_decimal)
    conv.register_unstructure_hook(datetime, lambda dt: dt.isoformat())
    conv.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    conv.register_unstructure_hook(StorageRef, _unstructure_ref)
    conv.register_structure_hook(StorageRef, _structure_ref)
    return conv


converter = _make()
# The same converter, leaving out fields equal to their defaults: what the worker protocol
# sends, so a no-op stage's summary is `{"method": "noop"}` rather than a page of zeros.
_omitting = converter.copy(omit_if_default=True)
# And for signed requests, inline references without their size and digest: the signature
# covers the bytes, and the receiver works both out (`_structure_ref`).
_signed = converter.copy(omit_if_default=True)
_signed.register_unstructure_hook(
    StorageRef,
    lambda ref: (
        {k: v for k, v in _unstructure_ref(ref).items() if k not in ("sha256", "size")}
        if ref.scheme is StorageScheme.INLINE
        else _unstructure_ref(ref)
    ),
)
# And one refusing fields a class does not have (its hooks are built from its own setting).
_forbidding = _make(forbid_extra_keys=True)


def unstructure(value: Any, *, omit_defaults: bool = False) -> Any:
    """`value` as plain JSON-compatible data.

    With `omit_defaults`, fields of attrs classes that equal their defaults are left out;
    `structure` puts the defaults back.
    """
    return (_omitting if omit_defaults else converter).unstructure(value)


def structure(data: Any, cls: type[T], *, forbid_extra_keys: bool = False) -> T:
    """Build a `cls` from plain data. Raises `BadInputError` naming what is wrong.

    Keys an attrs class does not have are ignored, or with `forbid_extra_keys` refused.
    """
    try:
        return (_forbidding if forbid_extra_keys else converter).structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        notes = cattrs.transform_error(exc) if isinstance(exc, cattrs.BaseValidationError) else []
        raise BadInputError(
            f"invalid {getattr(cls, '__name__', 'value')}: {notes[0] if notes else exc}",
            details={"errors": notes or [str(exc)]},
        ) from exc


_BINDING_KEYS = frozenset({"path", "ref", "value"})


def stage_input(data: Any) -> StageInput:
    """`structure(data, StageInput)`, built directly when `data` has the document's shape.

    Every handshake reads a stage input document, and the converter's generic walk cost
    about as much as parsing its JSON. A document shaped as the orchestrator writes it
    (`action`, `parameters`, `bindings` of `path`/`ref`/`value`) is built here, its
    references through the converter's own hook; anything else goes through `structure`,
    which builds the same or raises the same `BadInputError`.
    """
    if type(data) is dict and data.keys() == StageInput.KEYS:
        action, parameters, bindings = data["action"], data["parameters"], data["bindings"]
        if type(action) is str and type(parameters) is dict and type(bindings) is dict:
            built: dict[str, Binding] = {}
            try:
                for name, binding in bindings.items():
                    if type(binding) is not dict or not binding.keys() <= _BINDING_KEYS:
                        break
                    path, ref = binding.get("path", ""), binding.get("ref")
                    if type(path) is not str:
                        break
                    structured = None if ref is None else _structure_ref(ref, StorageRef)
                    built[name] = Binding(structured, path, binding.get("value"))
                else:
                    return StageInput(action, parameters, built)
            except (BadInputError, ValueError, TypeError, KeyError):
                pass  # `structure` says what is wrong
    return structure(data, StageInput)


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _compact_encoder(default: Callable[[Any], Any] = _refuse) -> Callable[[Any], str]:
    """`json.dumps(separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=...)`
    with the C encoder built once: json.dumps with options builds a new encoder on every
    call, which is most of the cost of encoding a small message or row value. Without a
    circular-reference check: a cyclic value raises `RecursionError`, not `ValueError`."""
    if c_make_encoder is None:  # not CPython's accelerated json
        return json.JSONEncoder(
            separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=default
        ).encode
    encode = c_make_encoder(None, default, encode_basestring, None, ":", ",", True, False, True)
    return lambda value: "".join(encode(value, 0))


_COMPACT = _compact_encoder()


def _converted(value: Any) -> Any:
    data = converter.unstructure(value)
    if data is value:  # the converter knows no better: not JSON, as json.dumps would say
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return data


_CONVERTING = _compact_encoder(_converted)


def json_text(value: Any) -> str:
    """`value` as compact, key-sorted JSON text, plain JSON values encoded as they are and
    anything else (models, storage references, decimals, datetimes) through the converter:
    the text `dumps(unstructure(value))` gives, without walking the plain values first.
    Raises `TypeError` for what neither JSON nor the converter can hold."""
    return _CONVERTING(value)


def dumps(data: Any) -> bytes:
    """Compact, key-sorted JSON bytes (stable, so equal values give equal bytes and digests).

    Raises `TypeError` for a value JSON cannot hold."""
    return _COMPACT(data).encode()


def loads(raw: bytes | str) -> Any:
    """Parse JSON. Raises `BadInputError` on malformed input, on integers longer than Python
    parses (`sys.get_int_max_str_digits`), and on input nested too deeply for the parser
    (thousands of levels: `[[[[...]]]]` would otherwise end the request with a
    `RecursionError`)."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"malformed JSON: {exc}") from exc
    except ValueError as exc:  # an integer too long to parse
        raise BadInputError(f"malformed JSON: {str(exc).split(';')[0]}") from exc
    except RecursionError as exc:
        raise BadInputError("malformed JSON: nested too deeply") from exc


def to_json(value: Any, *, omit_defaults: bool = False) -> bytes:
    """`value` (a model, message or plain data) as JSON bytes (see `unstructure`)."""
    return dumps(unstructure(value, omit_defaults=omit_defaults))


def to_signed_json(value: Any) -> bytes:
    """`to_json(value, omit_defaults=True)` for the body of a signed request: inline storage
    references leave out their size and sha256, which the receiver works out from the bytes
    (the signature, not the digest, protects them in transit)."""
    return dumps(_signed.unstructure(value))


def from_json(raw: bytes | str, cls: type[T], *, forbid_extra_keys: bool = False) -> T:
    """Parse JSON bytes into a `cls` (see `structure`). Raises `BadInputError`."""
    return structure(loads(raw), cls, forbid_extra_keys=forbid_extra_keys)
