"""What the runtime reads from type annotations: the one place that peels `Annotated[...]` and
`Optional[...]`, and the one test for a pydantic model.

The runtime does not import pydantic: a class is a pydantic model only when the app's own code
has imported pydantic (`sys.modules`) and the class derives from its `BaseModel`.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Callable
from typing import Any


def strip_annotated(annotation: Any, keep: Callable[[Any], bool] | None = None) -> Any:
    """`X` for `Annotated[X, ...]`, still annotated with the extras `keep` accepts; anything else unchanged."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return annotation
    base, *extras = typing.get_args(annotation)
    kept = [extra for extra in extras if keep(extra)] if keep is not None else []
    return typing.Annotated[(base, *kept)] if kept else base


def strip_optional(annotation: Any) -> Any:
    """`X` for `Optional[X]` (a union of one type and None); anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def bare(annotation: Any) -> Any:
    """The type under any `Annotated[...]` and `Optional[...]` layers, in either order."""
    while True:
        peeled = strip_optional(strip_annotated(annotation))
        if peeled is annotation:
            return annotation
        annotation = peeled


def is_pydantic_model(annotation: Any) -> bool:
    """Whether `annotation` is a pydantic model class."""
    module = sys.modules.get("pydantic")
    return (
        module is not None
        and isinstance(annotation, type)
        and issubclass(annotation, module.BaseModel)
    )


def mentions_pydantic(annotation: Any) -> bool:
    """Whether `annotation` is or contains a pydantic model (`list[Model]`, `Model | None`)."""
    if is_pydantic_model(annotation):
        return True
    return "pydantic" in sys.modules and any(
        mentions_pydantic(arg) for arg in typing.get_args(annotation)
    )
