"""A small catalogue API whose docstrings and types exercise what /docs shows (no runpod_flash import)."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import msgspec

Sku = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}-\d{4}$", description="Stock keeping unit, e.g. `ABC-1234`.")]


class Colour(str, enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Product(msgspec.Struct):
    """A product of the catalogue."""

    sku: Sku
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    price: Annotated[float, msgspec.Meta(gt=0, description="Unit price in EUR.")]
    colour: Colour = Colour.RED
    tags: list[str] = []


class Page(msgspec.Struct):
    items: list[Product]
    total: int
    next_offset: int | None = None


_PRODUCTS = [Product("ABC-0001", "Mug", 8.5, Colour.BLUE, ["kitchen"]), Product("ABC-0002", "Lamp", 35.0)]


async def list_products(
    offset: Annotated[int, msgspec.Meta(ge=0, description="Items to skip.")] = 0,
    limit: Annotated[int, msgspec.Meta(ge=1, le=100, description="Items per page, **at most 100**.")] = 20,
    sort: Literal["name", "price"] = "name",
) -> Page:
    """List products, one page at a time.

    Results are sorted by `sort`; follow `next_offset` until it is `null`:

    - `offset=0&limit=20` is the first page
    - `offset=20&limit=20` the second

    See [the catalogue guide](https://example.com/guide) for the fields.
    """
    ordered = sorted(_PRODUCTS, key=lambda p: getattr(p, sort))
    chunk = ordered[offset:offset + limit]
    more = offset + limit < len(ordered)
    return Page(chunk, len(ordered), offset + limit if more else None)


async def get_product(sku: Sku, currency: Literal["EUR", "USD"] = "EUR") -> Product:
    """Look a product up by its **SKU**.

    Answers 404 when there is none. <b>HTML stays text</b>.
    """
    from starlette.exceptions import HTTPException

    for product in _PRODUCTS:
        if product.sku == sku:
            return product
    raise HTTPException(404, "no such product")


def create_product(
    product: Product,
    dry_run: Annotated[bool, msgspec.Meta(description="Validate only; store nothing.")] = False,
) -> Product:
    """Add a product to the catalogue.

    The body holds the product under `product`:

    ```json
    {"product": {"sku": "ABC-1234", "name": "Mug", "price": 8.5}}
    ```
    """
    return product


async def paint(sku: Sku, colour: Colour, coats: Annotated[int, msgspec.Meta(ge=1, le=5, multiple_of=1)] = 1) -> dict:
    """Change a product's colour (1 to 5 *coats*)."""
    return {"sku": sku, "colour": colour, "coats": coats}


async def remove_product(sku: Sku) -> None:
    """Remove a product."""
