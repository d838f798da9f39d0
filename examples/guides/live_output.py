"""Live command output: follow a running command, use callbacks, and fail on a bad exit."""

from crownest import CommandFailedError, CrowNest

with CrowNest() as client, client.sandboxes.create(template="python") as sandbox:
    # start() returns at once with a CommandHandle; output() follows it until it ends.
    build = sandbox.commands.start("for step in 1 2 3; do echo step $step; sleep 0.1; done; echo done >&2")
    for chunk in build.output():
        print(f"[{chunk.stream}] {chunk.data}", end="")
    print("build ended:", build.status, build.exit_code)

    # run() with callbacks: each one has run before run() returns.
    lines: list[str] = []
    sandbox.commands.run("printf 'a\\nb\\n'", on_stdout=lines.append)
    print("callback saw:", repr("".join(lines)))

    # A long-running process you talk to through stdin.
    echo = sandbox.commands.start("while read line; do echo got $line; done")
    echo.send_stdin("ping\n", eof=True)
    print("echo said:", echo.wait().stdout.strip())

    # check=True raises like subprocess.run(check=True).
    try:
        sandbox.commands.run("exit 3", check=True)
    except CommandFailedError as error:
        print("failed:", error.result.status, error.result.exit_code)
