"""Pages as other SDKs have them: `has_next_page()` and `get_next_page()`, sync and async,
against CrowNest Local; and a page's repr names its attribute (`data`)."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

import crownest
from crownest import AsyncPage, CrowNestError, Page
from crownest_local import LocalServer


def test_a_page_leads_to_the_next(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        made = [client.sandboxes.create(template="base", metadata={"pages": "sync"}) for _ in range(3)]
        page = client.sandboxes.list(metadata={"pages": "sync"}, limit=2).first_page()
        assert isinstance(page, Page) and len(page.data) == 2 and page.has_next_page()
        assert page._request_id and page._request_id.startswith("req_")
        assert repr(page) == f"Page(data=<2 items>, next_cursor={page.next_cursor!r})"
        last = page.get_next_page()
        assert [s.id for s in page.data + last.data] == [s.id for s in reversed(made)]
        assert not last.has_next_page()
        with pytest.raises(CrowNestError, match="last page: check has_next_page"):
            last.get_next_page()
        for sandbox in made:
            sandbox.kill()


async def test_an_async_page_leads_to_the_next(crownest_local: LocalServer) -> None:
    async with crownest_local.async_client(max_retries=0) as client:
        made = [await client.sandboxes.create(template="base", metadata={"pages": "async"}) for _ in range(3)]
        page = await client.sandboxes.list(metadata={"pages": "async"}, limit=2).first_page()
        assert isinstance(page, AsyncPage) and page.has_next_page()
        last = await page.get_next_page()
        assert [s.id for s in page.data + last.data] == [s.id for s in reversed(made)]
        assert not last.has_next_page()
        with pytest.raises(CrowNestError, match="last page"):
            await last.get_next_page()
        for sandbox in made:
            await sandbox.kill()


def test_a_list_is_a_pager_exactly_when_the_api_pages_it() -> None:
    """files.list, previews.list and templates.list answer whole (the API gives them no cursor), so
    they return a list, sync and async alike; every operation with a cursor returns a pager."""
    spec = json.loads((Path(crownest.__file__).parent / "_generated" / "openapi.json").read_text())
    shapes: dict[str, str] = {}
    for operations in spec["paths"].values():
        for op in operations.values():
            if not isinstance(op, dict) or not op.get("x-crownest-method", "").startswith("list"):
                continue
            params = [p.get("$ref", p.get("name", "")) for p in op.get("parameters", [])]
            paged = any(str(p).endswith("/Cursor") for p in params)
            tag = op["tags"][0]
            for mode in ("", "Async"):
                holder = getattr(importlib.import_module(f"crownest._generated.resources.{tag}"), mode + tag.title())
                method = getattr(holder, op["x-crownest-method"], None)
                if method is None:
                    continue  # a sandbox-scoped operation: on the handle's resource only
                returns = str(inspect.signature(method).return_annotation)
                assert ("Pager" in returns) == paged, f"{mode}{tag}.{op['x-crownest-method']} -> {returns}"
                shapes[f"{tag}.{op['x-crownest-method']}"] = "pager" if paged else "list"
    assert {k for k, v in shapes.items() if v == "list"} == {"files.list", "previews.list", "templates.list"}
