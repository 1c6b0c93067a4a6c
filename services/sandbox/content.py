"""Reported content as the sandbox's platforms host it, for stays-down checks.

Content is up (200) until a report of its URL is decided removed, restricted or
account_suspended; then it is gone (410) until an operator or a test says it was uploaded again
(POST /admin/content/reappear). URLs are compared exactly, as reported (the canonical URL).
"""

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.sandbox.runtime import sandbox_of

router = APIRouter(tags=["content"])
MAX_URL = 4096


class Content(BaseModel):
    url: str
    reachable: bool


class Reappearance(BaseModel):
    url: str = Field(min_length=1, max_length=MAX_URL)


@router.get("/content", response_model=Content, responses={410: {"model": Content, "description": "Taken down."}})
async def content(request: Request, url: str = Query(min_length=1, max_length=MAX_URL)) -> JSONResponse:
    """Whether the content at url is up (200) or was taken down by a decision (410)."""
    gone = url in sandbox_of(request).store.removed_urls
    return JSONResponse(Content(url=url, reachable=not gone).model_dump(),
                        status_code=status.HTTP_410_GONE if gone else status.HTTP_200_OK)


@router.post("/admin/content/reappear", response_model=Content, tags=["operations"])
async def reappear(body: Reappearance, request: Request) -> Content:
    """The content at url is up again (re-uploaded): GET /content answers 200 until it is taken down again."""
    sandbox_of(request).store.reappear(body.url)
    return Content(url=body.url, reachable=True)
