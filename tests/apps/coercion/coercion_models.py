# Types of the coercion app.
from pydantic import BaseModel


class Part(BaseModel):
    sku: str
    qty: int = 1
