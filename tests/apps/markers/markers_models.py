# Types of the markers app, in a module of their own as an app's models usually are.
from typing import Optional

from pydantic import BaseModel, Field


class Filters(BaseModel):
    limit: int = Field(10, ge=1, le=100)
    q: Optional[str] = None
    tags: list[str] = []


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=10)
    price: float = Field(gt=0)


class Meta(BaseModel):
    title: str
    pages: int = 1
