"""Validation errors a person can act on: the field path, what was expected, the closest key."""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError


class ManifestError(ValueError):
    """A run manifest or selection config that does not validate. `problems` holds one line
    per problem, each starting with the field path."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source} is not valid:\n" + "\n".join(f"  - {p}" for p in problems))


def _unwrap(annotation: Any) -> list[Any]:
    """The candidate types behind Optional/Union/Annotated/list/dict."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in get_args(annotation):
            if arg is not type(None):
                out.extend(_unwrap(arg))
        return out
    return [annotation]


def _tag_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    if field is None:
        return None
    args = get_args(field.annotation)
    return str(args[0]) if args else None


def _step(types_here: list[Any], part: str | int) -> list[Any]:
    """Follow one element of a pydantic error location."""
    nxt: list[Any] = []
    for tp in types_here:
        origin = get_origin(tp)
        if isinstance(part, int) and origin in (list, tuple):
            nxt.extend(_unwrap(get_args(tp)[0]))
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            if _tag_of(tp) == part:  # discriminated unions put the tag in the location
                nxt.append(tp)
                continue
            for name, field in tp.model_fields.items():
                if part in (name, field.alias):
                    nxt.extend(_unwrap(field.annotation))
        elif origin is dict and isinstance(part, str):
            nxt.extend(_unwrap(get_args(tp)[1]))
    return nxt


def allowed_keys(root: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys the model accepts at `loc` (a mapping's location)."""
    current: list[Any] = [root]
    for part in loc:
        current = _step(current, part)
    keys: list[str] = []
    for tp in current:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            for name, field in tp.model_fields.items():
                keys.append(field.alias or name)
    return sorted(set(keys))


def _is_tag(part: str | int) -> bool:
    # Discriminator tags (EMBEDDINGS, DIVERSITY, ...) and validator names are not fields.
    return isinstance(part, str) and (part.isupper() or part.startswith(("function-", "literal[")))


def format_loc(loc: tuple[str | int, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if _is_tag(part):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def describe(err: ValidationError, root: type[BaseModel], prefix: str = "") -> list[str]:
    problems: list[str] = []
    for item in err.errors():
        loc = tuple(item["loc"])
        where = format_loc(loc, prefix)
        kind = item["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            valid = allowed_keys(root, loc[:-1])
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listing = f" (valid keys: {', '.join(valid)})" if valid else ""
            problems.append(f"{where}: unknown field{hint}{listing}")
        elif kind == "missing":
            problems.append(f"{where}: required field is missing")
        elif kind == "union_tag_invalid":
            ctx = item.get("ctx", {})
            problems.append(
                f"{where}: unknown {ctx.get('discriminator', 'type')} {ctx.get('tag')!r}; "
                f"expected one of {ctx.get('expected_tags')}"
            )
        else:
            message = item["msg"].removeprefix("Value error, ")
            got = item.get("input")
            secret = any(SECRET_FIELD.search(str(part)) for part in loc)
            shown = "" if secret or isinstance(got, dict | list) or got is None else f" (got {got!r})"
            problems.append(f"{where}: {message}{shown}")
    return problems


# a field whose value may be a credential: never echoed back in an error
SECRET_FIELD = re.compile(r"token|secret|password|credential|api_?key", re.IGNORECASE)


def validate_or_raise(model: type[BaseModel], data: Any, source: str, prefix: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ManifestError(source, describe(err, model, prefix)) from None
