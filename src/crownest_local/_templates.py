"""Templates: the built-in ones, and templates built from a base, files and commands.

A build is an ordinary sandbox of the base template (with its isolation and
limits): the files are written, then one command runs the build commands one
after the other (`/bin/sh -c` each, stopping at the first that fails), so
that the build's output is that command's event stream. When it succeeds,
the build sandbox's writable folders are copied to `data/templates/<name>/`
(as a snapshot's are) and the build sandbox is killed; a sandbox created
from the template starts with a copy of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
from pathlib import Path
from typing import Any

from starlette.responses import Response

from crownest.models import Template, TemplateStatus

from ._beneath import remove_path
from ._commands import LiveCommand
from ._errors import ApiProblem
from ._service import Call, Service, json_response, now
from ._snapshots import Snapshots, copy_tree, fill

BUILD_TTL_MS = 86_400_000


class Templates:
    def __init__(self, service: Service, snapshots: Snapshots) -> None:
        self.service = service
        self.snapshots = snapshots
        self.folder = service.config.data_dir / "templates"
        self.folder.mkdir(exist_ok=True)
        for body in service.store.all("template", status="building"):  # the server stopped mid-build
            service.store.update({**body, "status": "failed"})

    def path(self, name: str) -> Path:
        return self.folder / name

    def _builtin(self, name: str) -> dict[str, Any]:
        return Template(
            id=name,
            description=self.service.templates[name],
            status=TemplateStatus.READY,
            base=None,
            build_sandbox_id=None,
            build_command_id=None,
            created_at=None,
        ).to_dict()

    def body(self, name: str) -> dict[str, Any] | None:
        """A template by name, built-in or built; None if there is none."""
        if name in self.service.templates:
            return self._builtin(name)
        return self.service.store.get("template", name)

    # Handlers

    async def list_templates(self, call: Call) -> dict[str, Any]:
        await self.service.list_templates(call)  # its warning when commands run unisolated
        built = self.service.store.all("template")
        return {"data": [self._builtin(name) for name in self.service.templates] + built[::-1]}

    async def get_template(self, call: Call) -> dict[str, Any]:
        name = call.path["templateId"]
        body = self.body(name)
        if body is None:
            raise ApiProblem(404, "template_not_found", f"Template {name} does not exist.", {"templateId": name})
        return body

    async def create_template(self, call: Call) -> Response:
        service, spec = self.service, call.body
        name, base = spec["name"], spec.get("base", "python")
        if self.body(name) is not None:
            raise ApiProblem(409, "template_exists", f"Template {name} exists already.", {"templateId": name})
        base_body = self.body(base)
        if base_body is None:
            raise ApiProblem(
                400, "template_not_found", f"Template {base} does not exist.", {"template": base, "field": "base"}
            )
        _ready(base_body)
        request = {"template": base, "env": spec.get("env", {}), "ttlMs": BUILD_TTL_MS}
        sandbox = await service.new_sandbox(request, self._populate(base))
        folder = service.folder(sandbox["id"])
        try:
            for path, content in spec.get("files", {}).items():
                target = folder.resolve(path).host
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
            await asyncio.to_thread(folder.adopt_tree)  # what was written here is the build's user's
            script = " && ".join(f"/bin/sh -c {shlex.quote(c)}" for c in spec.get("commands", [])) or "true"
            build = Call(call.request, {"sandboxId": sandbox["id"]}, {}, {}, {"command": script, "timeoutMs": 0})
            live = await service._start_command(build, keep_stdin_open=False)
        except BaseException:
            service._end_sandbox(sandbox, "killed")
            raise
        template = Template(
            id=name,
            description=f"Built on {base} with {len(spec.get('commands', []))} command(s).",
            status=TemplateStatus.BUILDING,
            base=base,
            build_sandbox_id=sandbox["id"],
            build_command_id=live.body["id"],
            created_at=now(),
        )
        wire = template.to_dict()
        service.store.insert("template", wire)
        service.spawn(self._finish(wire, live))
        return json_response(wire, 202)

    async def _finish(self, template: dict[str, Any], live: LiveCommand) -> None:
        """Once the build command ends: keep the build's files (if it succeeded) and end the build sandbox."""
        service = self.service
        await live.finished.wait()
        sandbox_id = template["buildSandboxId"]
        succeeded = service.command_body(live.body["id"])["status"] == "succeeded"
        if succeeded and service.store.get("template", template["id"]) is not None:
            try:
                await asyncio.to_thread(copy_tree, service.folder(sandbox_id).folder, self.path(template["id"]))
            except ApiProblem:
                succeeded = False
        sandbox = service.store.get("sandbox", sandbox_id)
        if sandbox is not None and sandbox["status"] in ("running", "paused", "starting"):
            service._end_sandbox(sandbox, "killed")
        if service.store.get("template", template["id"]) is not None:  # not deleted meanwhile
            service.store.update({**template, "status": "ready" if succeeded else "failed"})

    async def delete_template(self, call: Call) -> None:
        name = call.path["templateId"]
        if name in self.service.templates:
            raise ApiProblem(
                403, "permission_denied", f"Template {name} is built in and cannot be deleted.", {"templateId": name}
            )
        body = await self.get_template(call)
        self.service.store.delete(body["id"])
        trash = self.folder / f".trash-{name}-{secrets.token_hex(4)}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.path(name), trash)
            self.service.spawn(asyncio.to_thread(remove_path, trash))

    async def create_sandbox(self, call: Call) -> Response:
        """`createSandbox`: a built template's sandbox starts with a copy of what its build wrote."""
        name = call.body.get("template")
        if name is None or "snapshot" in call.body or name in self.service.templates:
            return await self.snapshots.create_sandbox(call)
        body = self.body(name)
        if body is not None:
            _ready(body)
        return json_response(await self.service.new_sandbox(call.body, self._populate(name)), 201)

    def _populate(self, name: str) -> Any:
        """What fills a new sandbox of template `name`: a copy of a built template's files, or nothing."""
        if name in self.service.templates:
            return None
        source = self.path(name)
        return lambda folder: fill(source, folder)


def _ready(body: dict[str, Any]) -> None:
    if body.get("status", "ready") != "ready":
        raise ApiProblem(
            409,
            "template_not_ready",
            f"Template {body['id']} is {body['status']}: sandboxes start from it once it is ready.",
            {"templateId": body["id"], "status": body["status"]},
        )
