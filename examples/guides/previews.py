"""Previews: publish a web server that runs in a sandbox, privately (token header) or publicly."""

import os

import httpx

from crownest import CrowNest, CrowNestApiError

PORT = int(os.environ.get("PORT", "8000"))  # CrowNest Local's sandboxes share the host's ports

with CrowNest() as client, client.sandboxes.create(template="python") as sandbox:
    sandbox.files.write("site/index.html", "<h1>hello from the sandbox</h1>")
    sandbox.commands.start(f"cd site && exec python -m http.server {PORT} --bind 127.0.0.1")

    # wait_ms: create() answers once the server accepts connections, so the first request works.
    preview = sandbox.previews.create(PORT, wait_ms=30_000)
    print("visibility:", preview.visibility)

    # A private preview (the default) wants its token in the X-CrowNest-Preview-Token header.
    assert isinstance(preview.token, str)  # every private preview has one
    page = httpx.get(preview.url, headers={"X-CrowNest-Preview-Token": preview.token})
    print("with the token:", page.status_code, page.text)
    print("without it:", httpx.get(preview.url).status_code)

    # A port has one preview: asking for another visibility is a 409 that says what to do.
    try:
        sandbox.previews.create(PORT, visibility="public")
    except CrowNestApiError as error:
        print("change of visibility:", error.status, error.code)
    sandbox.previews.delete(preview.id)
    public = sandbox.previews.create(PORT, visibility="public")
    print("public, no header:", httpx.get(public.url).status_code)
