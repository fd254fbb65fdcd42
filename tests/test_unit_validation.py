"""msgspec's validation messages, and the FastAPI `detail` entries the runtime makes of them.

The runtime reads msgspec's error text (`Expected `int`, got `str` - at `$.a[0].b``) to build
pydantic's `type`, `loc` and `msg`. Each case pins both the raw message and the entry, so a msgspec
upgrade that rewords a message fails here, naming the message, before any client sees a
`value_error` where it expected `int_parsing`.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal, Optional

import msgspec
import pytest

from runtime.validation import validation_error


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Inner(msgspec.Struct):
    b: int


def _failure(fields: dict[str, Any], values: Any) -> msgspec.ValidationError:
    """The error msgspec raises converting `values` into a Struct of `fields`, as the binder does."""
    struct = msgspec.defstruct("Params", list(fields.items()), kw_only=True)
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(values, struct, strict=False)
    return caught.value


INT_PARSING = (
    "int_parsing",
    "Input should be a valid integer, unable to parse string as an integer",
)

CASES = [
    # wrong type
    (
        "int from str",
        {"y": int},
        {"y": "abc"},
        "Expected `int`, got `str` - at `$.y`",
        ["y"],
        INT_PARSING,
    ),
    (
        "int from array",
        {"y": int},
        {"y": [1]},
        "Expected `int`, got `array` - at `$.y`",
        ["y"],
        ("int_type", "Input should be a valid integer"),
    ),
    (
        "int from float",
        {"y": int},
        {"y": 1.5},
        "Expected `int`, got `float` - at `$.y`",
        ["y"],
        ("int_from_float", "Input should be a valid integer, got a number with a fractional part"),
    ),
    (
        "float from str",
        {"r": float},
        {"r": "x"},
        "Expected `float`, got `str` - at `$.r`",
        ["r"],
        ("float_parsing", "Input should be a valid number, unable to parse string as a number"),
    ),
    (
        "str from int",
        {"name": str},
        {"name": 5},
        "Expected `str`, got `int` - at `$.name`",
        ["name"],
        ("string_type", "Input should be a valid string"),
    ),
    (
        "bool from str",
        {"flag": bool},
        {"flag": "maybe"},
        "Expected `bool`, got `str` - at `$.flag`",
        ["flag"],
        ("bool_parsing", "Input should be a valid boolean, unable to interpret input"),
    ),
    (
        "list from object",
        {"xs": list[int]},
        {"xs": {}},
        "Expected `array`, got `object` - at `$.xs`",
        ["xs"],
        ("list_type", "Input should be a valid list"),
    ),
    (
        "dict from array",
        {"d": dict[str, int]},
        {"d": []},
        "Expected `object`, got `array` - at `$.d`",
        ["d"],
        ("dict_type", "Input should be a valid dictionary"),
    ),
    (
        "None from int",
        {"y": None},
        {"y": 1},
        "Expected `null`, got `int` - at `$.y`",
        ["y"],
        ("none_required", "Input should be None"),
    ),
    (
        "Optional[int] from str",
        {"y": Optional[int]},
        {"y": "x"},
        "Expected `int | null`, got `str` - at `$.y`",
        ["y"],
        INT_PARSING,
    ),
    (
        "body not an object",
        {"y": int},
        [1],
        "Expected `object`, got `array`",
        [],
        (
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        ),
    ),
    # missing
    (
        "missing field",
        {"y": int},
        {},
        "Object missing required field `y`",
        ["y"],
        ("missing", "Field required"),
    ),
    (
        "missing nested field",
        {"a": list[Inner]},
        {"a": [{}]},
        "Object missing required field `b` - at `$.a[0]`",
        ["a", 0, "b"],
        ("missing", "Field required"),
    ),
    # constraints
    (
        "ge",
        {"n": Annotated[int, msgspec.Meta(ge=1)]},
        {"n": 0},
        "Expected `int` >= 1 - at `$.n`",
        ["n"],
        ("greater_than_equal", "Input should be greater than or equal to 1"),
    ),
    (
        "gt on a float, named as declared",
        {"n": Annotated[float, msgspec.Meta(gt=0)]},
        {"n": 0},
        "Expected `float` > 0.0 - at `$.n`",
        ["n"],
        ("greater_than", "Input should be greater than 0"),
    ),
    (
        "le",
        {"n": Annotated[int, msgspec.Meta(le=5)]},
        {"n": 6},
        "Expected `int` <= 5 - at `$.n`",
        ["n"],
        ("less_than_equal", "Input should be less than or equal to 5"),
    ),
    (
        "integer lt, told by msgspec as <=",
        {"n": Annotated[int, msgspec.Meta(lt=1000)]},
        {"n": 1000},
        "Expected `int` <= 999 - at `$.n`",
        ["n"],
        ("less_than", "Input should be less than 1000"),
    ),
    (
        "multiple_of",
        {"n": Annotated[int, msgspec.Meta(multiple_of=3)]},
        {"n": 4},
        "Expected `int` that's a multiple of 3 - at `$.n`",
        ["n"],
        ("multiple_of", "Input should be a multiple of 3"),
    ),
    (
        "str min_length",
        {"w": Annotated[str, msgspec.Meta(min_length=2)]},
        {"w": "a"},
        "Expected `str` of length >= 2 - at `$.w`",
        ["w"],
        ("string_too_short", "String should have at least 2 characters"),
    ),
    (
        "str max_length 1, singular",
        {"w": Annotated[str, msgspec.Meta(max_length=1)]},
        {"w": "ab"},
        "Expected `str` of length <= 1 - at `$.w`",
        ["w"],
        ("string_too_long", "String should have at most 1 character"),
    ),
    (
        "list min_length",
        {"xs": Annotated[list[int], msgspec.Meta(min_length=2)]},
        {"xs": [1]},
        "Expected `array` of length >= 2 - at `$.xs`",
        ["xs"],
        ("too_short", "List should have at least 2 items after validation"),
    ),
    (
        "dict max_length",
        {"d": Annotated[dict[str, int], msgspec.Meta(max_length=1)]},
        {"d": {"a": 1, "b": 2}},
        "Expected `object` of length <= 1 - at `$.d`",
        ["d"],
        ("too_long", "Dictionary should have at most 1 item after validation"),
    ),
    (
        "pattern",
        {"w": Annotated[str, msgspec.Meta(pattern="^[a-z]+$")]},
        {"w": "AB"},
        "Expected `str` matching regex '^[a-z]+$' - at `$.w`",
        ["w"],
        ("string_pattern_mismatch", "String should match pattern '^[a-z]+$'"),
    ),
    # nested paths
    (
        "struct in a list",
        {"a": list[Inner]},
        {"a": [{"b": "x"}]},
        "Expected `int`, got `str` - at `$.a[0].b`",
        ["a", 0, "b"],
        INT_PARSING,
    ),
    (
        "list of lists",
        {"m": list[list[int]]},
        {"m": [[1, 2], [3, "x"]]},
        "Expected `int`, got `str` - at `$.m[1][1]`",
        ["m", 1, 1],
        INT_PARSING,
    ),
    (
        "dict value: msgspec elides the key, the runtime finds it",
        {"w": dict[str, float]},
        {"w": {"a": 1.0, "bad": "x"}},
        "Expected `float`, got `str` - at `$.w[...]`",
        ["w", "bad"],
        ("float_parsing", "Input should be a valid number, unable to parse string as a number"),
    ),
    # enum and literal
    (
        "enum",
        {"c": Color},
        {"c": "blue"},
        "Invalid enum value 'blue' - at `$.c`",
        ["c"],
        ("enum", "Input should be 'red' or 'green'"),
    ),
    (
        "literal",
        {"m": Literal["fast", "slow"]},
        {"m": "medium"},
        "Invalid enum value 'medium' - at `$.m`",
        ["m"],
        ("literal_error", "Input should be 'fast' or 'slow'"),
    ),
]


@pytest.mark.parametrize(
    "fields, values, raw, loc, entry", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_msgspec_message_and_the_entry_made_of_it(fields, values, raw, loc, entry):
    exc = _failure(fields, values)
    assert str(exc) == raw  # msgspec's wording, which the runtime parses
    assert validation_error("body", exc, fields, lambda: values) == {
        "type": entry[0],
        "loc": ["body", *loc],
        "msg": entry[1],
    }


def test_the_json_decoder_words_its_errors_as_convert_does():
    struct = msgspec.defstruct("Params", [("a", list[Inner])], kw_only=True)
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.Decoder(struct, strict=False).decode(b'{"a": [{"b": "x"}]}')
    assert str(caught.value) == "Expected `int`, got `str` - at `$.a[0].b`"
    assert validation_error("query", caught.value, {"a": list[Inner]})["loc"] == [
        "query",
        "a",
        0,
        "b",
    ]


def test_an_unknown_message_is_a_value_error_carrying_it():
    exc = msgspec.ValidationError("Something msgspec never said - at `$.y`")
    assert validation_error("body", exc, {"y": int}) == {
        "type": "value_error",
        "loc": ["body", "y"],
        "msg": "Something msgspec never said",
    }


def test_a_dict_key_is_left_empty_when_the_input_cannot_be_read_again():
    exc = _failure({"w": dict[str, float]}, {"w": {"bad": "x"}})
    assert validation_error("body", exc, {"w": dict[str, float]})["loc"] == ["body", "w", ""]
