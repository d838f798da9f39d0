# The product page, "SandboxHandle ergonomics" (inside a client, which the page leaves out).
from crownest import CrowNest

with CrowNest() as client:
    sandbox = client.sandboxes.create(template="node")
    sandbox.files.write("app.js", "console.log('hi')")
    result = sandbox.commands.run("node app.js")
    print(sandbox.id, sandbox.status, sandbox["expiresAt"], sorted(sandbox.to_dict()))
    print(result["stdout"], end="")
    sandbox.kill()
