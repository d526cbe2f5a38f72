"""serde's alternative forms, rewritten to the canonical ones before decoding.

serde (Codex's decoder) also takes a struct as a JSON array of its fields in declaration
order, an internally tagged enum as an array whose first element is the tag, and a unit
enum variant in map form (``{"completed": null}``). msgspec takes only the canonical form,
so a line that does not decode is rewritten here, guided by the model's type, and decoded
again. Only the failure path pays; the writer keeps writing the canonical form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
from msgspec import inspect


def canonical(value: Any, info: inspect.Type) -> Any:
    """``value`` with serde's alternative forms replaced by the canonical ones for ``info``."""
    if isinstance(info, inspect.StructType):
        return _struct(value, info)
    if isinstance(info, inspect.UnionType):
        return _union(value, info)
    if isinstance(info, inspect.EnumType | inspect.LiteralType):
        return _unit_variant(value)
    if isinstance(info, inspect.ListType | inspect.SetType | inspect.FrozenSetType):
        if isinstance(value, list):
            return [canonical(item, info.item_type) for item in value]
    if isinstance(info, inspect.DictType) and isinstance(value, dict):
        return {key: canonical(item, info.value_type) for key, item in value.items()}
    return value


def _unit_variant(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((variant, detail),) = value.items()
        if detail is None:
            return variant
    return value


def _struct(value: Any, info: inspect.StructType, skip_tag: bool = False) -> Any:
    fields = info.fields
    if isinstance(value, list) and not info.array_like:
        if len(value) > len(fields):
            return value
        value = {field.encode_name: item for field, item in zip(fields, value, strict=False)}
    if isinstance(value, dict):
        for field in fields:
            if field.encode_name in value:
                value[field.encode_name] = canonical(value[field.encode_name], field.type)
    return value


def _union(value: Any, info: inspect.UnionType) -> Any:
    structs = [kind for kind in info.types if isinstance(kind, inspect.StructType)]
    tagged = {kind.tag: kind for kind in structs if kind.tag_field is not None}
    if tagged:
        tag_field = next(kind.tag_field for kind in structs if kind.tag_field is not None)
        if isinstance(value, list) and value and isinstance(value[0], str):
            chosen = tagged.get(value[0])
            if chosen is None or len(value) - 1 > len(chosen.fields):
                return value
            fields = zip(chosen.fields, value[1:], strict=False)
            value = {tag_field: value[0], **{field.encode_name: item for field, item in fields}}
        if isinstance(value, dict):
            tag = value.get(tag_field)
            chosen = tagged.get(tag) if isinstance(tag, str) else None
            return value if chosen is None else _struct(value, chosen)
        return value
    if value is None:
        return value
    if len(structs) == 1:
        return _struct(value, structs[0])
    if any(isinstance(kind, inspect.EnumType | inspect.LiteralType) for kind in info.types):
        return _unit_variant(value)
    return value


def struct_from_array(value: Any, fields: Sequence[str]) -> Any:
    """A struct with ``fields`` (declaration order) given as a JSON array, as an object.

    For payload bodies read as loose JSON: serde takes the array form of a struct, one
    element a field (a missing element is an error, as in serde). Anything else is
    returned as it is.
    """
    if isinstance(value, list) and len(value) == len(fields):
        return dict(zip(fields, value, strict=True))
    return value


def tagged_from_array(value: Any, variants: Mapping[str, Sequence[str]], tag: str = "type") -> Any:
    """An internally tagged enum given as ``[tag, field, ...]``, as ``{tag: ..., field: ...}``.

    ``variants`` maps each tag to its fields in declaration order. Anything else (an
    unknown tag, another length) is returned as it is.
    """
    if isinstance(value, list) and value and isinstance(value[0], str):
        fields = variants.get(value[0])
        if fields is not None and len(value) == len(fields) + 1:
            return {tag: value[0], **dict(zip(fields, value[1:], strict=True))}
    return value


def decode_alternative(data: bytes, decoder: msgspec.json.Decoder[Any], info: inspect.Type) -> Any:
    """Decode ``data`` with ``decoder`` after rewriting serde's alternative forms.

    Raises:
        msgspec.DecodeError: It does not decode even so.
        RecursionError: Nested too deeply.
    """
    rewritten = canonical(msgspec.json.decode(data), info)
    return decoder.decode(msgspec.json.encode(rewritten))


def struct_field_names(namespace: Iterable[Any]) -> frozenset[str]:
    """The JSON names of every field of the msgspec structs in ``namespace`` (tags included)."""
    names = {"type"}
    for value in namespace:
        if isinstance(value, type) and issubclass(value, msgspec.Struct):
            names.update(value.__struct_encode_fields__)
    return frozenset(names)


def duplicate_field(data: bytes, fields: frozenset[str]) -> str | None:
    """The first key of ``fields`` that some object of the JSON text ``data`` holds twice.

    serde refuses a struct field given twice (``duplicate field `seq```); msgspec keeps
    the last. Keys outside ``fields`` (unknown fields, which serde skips) are not checked.
    """
    import json  # only here: a command that meets no suspect text never loads it

    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if not found:
            seen: set[str] = set()
            for key, _ in items:
                if key in seen and key in fields:
                    found.append(key)
                    break
                seen.add(key)
        return dict(items)

    try:
        json.loads(data, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None  # the decoder has judged it
    return found[0] if found else None
