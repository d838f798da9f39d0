"""Quickstart: create a sandbox, put a file in it, run it, read the result, clean up.

The client finds the API through CROWNEST_API_KEY (and CROWNEST_BASE_URL, when
it is not the hosted service).
"""

from crownest import CrowNest

with CrowNest() as client:
    with client.sandboxes.create(template="python", metadata={"guide": "quickstart"}) as sandbox:
        print("sandbox is", sandbox.status)
        sandbox.files.write("hello.py", "import sys\nprint('hello from', sys.platform)\n")
        result = sandbox.commands.run("python hello.py")
        print("exit code:", result.exit_code)
        print(result.stdout, end="")
    # Leaving `with` killed the sandbox.
    print("afterwards:", client.sandboxes.get(sandbox.id).status)
