# One load-balanced resource whose routes use FastAPI's parameter markers, read from Annotated[...]
# and from defaults, on GET (registered unchanged) and on body methods (wrapped by runpod-flash
# unless a parameter is a pydantic model).
from typing import Annotated, Optional

from fastapi import Body, Cookie, Depends, File, Form, Header, Path, Query, UploadFile
from markers_models import Filters, Item, Meta
from pydantic import Field
from runpod_flash import Endpoint

api = Endpoint(name="markers", cpu="cpu3c-1-2", workers=(1, 2))


# --- headers and cookies ----------------------------------------------------------------------

@api.get("/header")
async def header(x_token: Annotated[str, Header()],
                 x_count: Annotated[Optional[int], Header(ge=1)] = None) -> dict:
    return {"x_token": x_token, "x_count": x_count}


@api.get("/header-alias")
async def header_alias(key: Annotated[str, Header(alias="X-Api-Key")],
                       raw_name: Annotated[str, Header(convert_underscores=False)] = "none") -> dict:
    return {"key": key, "raw_name": raw_name}


@api.get("/header-default")
def header_default(user_agent: str = Header(default="none"), x_level: int = Header(default=0, le=5)) -> dict:
    return {"user_agent_set": user_agent != "none", "x_level": x_level}


@api.get("/cookie")
async def cookie(session: Annotated[str, Cookie()], visits: Annotated[int, Cookie()] = 0) -> dict:
    return {"session": session, "visits": visits}


# --- query and path constraints ---------------------------------------------------------------

@api.get("/query")
async def query(n: Annotated[int, Query(ge=1, le=10)],
                word: Annotated[str, Query(min_length=2, max_length=5, pattern="^[a-z]+$")] = "ab",
                ratio: Annotated[float, Query(gt=0, lt=1)] = 0.5) -> dict:
    return {"n": n, "word": word, "ratio": ratio}


@api.get("/query-alias")
async def query_alias(item_id: Annotated[int, Query(alias="item-id")],
                      tags: Annotated[list[str], Query()] = []) -> dict:
    return {"item_id": item_id, "tags": tags}


@api.get("/query-default")
def query_default(limit: int = Query(5, ge=1), name: str = Query("x", max_length=3)) -> dict:
    return {"limit": limit, "name": name}


@api.get("/field")
def field(n: Annotated[int, Field(ge=0, le=9)] = 1) -> dict:
    return {"n": n}


@api.get("/path/{item_id}")
async def path(item_id: Annotated[int, Path(ge=1, lt=1000)], q: Optional[str] = None) -> dict:
    return {"item_id": item_id, "q": q}


@api.get("/path-name/{name}")
async def path_name(name: Annotated[str, Path(min_length=3, pattern="^[a-z]+$")]) -> dict:
    return {"name": name}


# --- a query-parameter model and a dependency -------------------------------------------------

@api.get("/filters")
async def filters(f: Annotated[Filters, Query()]) -> dict:
    return {"limit": f.limit, "q": f.q, "tags": f.tags, "is_model": isinstance(f, Filters)}


def paging(skip: int = 0, limit: Annotated[int, Query(le=50)] = 10) -> dict:
    return {"skip": skip, "limit": limit}


@api.get("/depends")
async def depends(page: Annotated[dict, Depends(paging)], q: Optional[str] = None) -> dict:
    return {"page": page, "q": q}


# --- body methods with a pydantic model: FastAPI reads the markers itself ---------------------

@api.post("/model-header")
async def model_header(item: Item, x_token: Annotated[str, Header()]) -> dict:
    return {"item": item.model_dump(), "x_token": x_token}


@api.post("/model-query")
async def model_query(item: Item, n: Annotated[int, Query(ge=1)] = 1) -> dict:
    return {"item": item.model_dump(), "n": n}


@api.put("/model-embed")
async def model_embed(item: Annotated[Item, Body(embed=True)]) -> dict:
    return {"item": item.model_dump()}


@api.post("/model-body-scalar")
async def model_body_scalar(item: Item, importance: Annotated[int, Body(gt=0)]) -> dict:
    return {"item": item.model_dump(), "importance": importance}


@api.post("/model-path/{item_id}")
async def model_path(item_id: Annotated[int, Path(ge=1)], item: Item) -> dict:
    return {"item_id": item_id, "item": item.model_dump()}


@api.post("/form-model")
async def form_model(meta: Annotated[Meta, Form()]) -> dict:
    return {"title": meta.title, "pages": meta.pages}


@api.post("/form-upload")
async def form_upload(meta: Annotated[Meta, Form()], file: Annotated[UploadFile, File()],
                      note: Annotated[str, Form(min_length=2)] = "xx") -> dict:
    return {"title": meta.title, "size": len(await file.read()), "note": note}


# --- body methods without a model: runpod-flash wraps them in a generated body model -----------

@api.post("/wrapped-default-markers")
async def wrapped_default_markers(n: int = Query(1, ge=1), label: str = Body("x", max_length=4),
                                  token: str = Header("none")) -> dict:
    return {"n": n, "label": label, "token": token}


@api.post("/wrapped-annotated")
async def wrapped_annotated(n: Annotated[int, Query(ge=1)], token: Annotated[str, Header()] = "none") -> dict:
    return {"n": n, "token": token}


@api.post("/wrapped-field")
async def wrapped_field(n: int = Field(ge=0, le=5), tag: str = Field("t", min_length=1)) -> dict:
    return {"n": n, "tag": tag}


@api.post("/upload-file")
async def upload_file(file: UploadFile, note: Annotated[str, Form()] = "") -> dict:
    data = await file.read()
    return {"filename": file.filename, "size": len(data), "note": note}


@api.post("/upload-bytes")
async def upload_bytes(file: Annotated[bytes, File()], note: str = "none") -> dict:
    return {"size": len(file), "note": note}
