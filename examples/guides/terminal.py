"""Interactive terminals: a shell on a real pseudo-terminal, resized, and a password prompt answered."""

from crownest import CrowNest

with CrowNest() as client, client.sandboxes.create(template="python") as sandbox:
    # A program on a terminal: `tty` names the sandbox's own device, `stty size` the terminal's size.
    pty = sandbox.pty.create(cols=100, rows=30, command="tty; stty size")
    print("printed:", b"".join(pty.output()))
    print("ended:", pty.status, pty.exit_code)

    # Type into it: a password prompt reads the terminal with echo off, so the answer is not printed.
    login = sandbox.pty.create(command="read -rsp 'Password: ' secret; echo; [ \"$secret\" = hunter2 ] && echo welcome")
    with login.output() as chunks:
        seen = b""
        while b"Password: " not in seen:
            seen += next(chunks)
        login.send("hunter2\r")  # "\r" is Enter
        seen += b"".join(chunks)
    print("login:", seen.decode().split("\r\n")[-2], "| echoed:", b"hunter2" in seen)

    # Resize: the program gets SIGWINCH and reads the new size.
    shell = sandbox.pty.create(command="read -r line; stty size")
    shell.resize(132, 43)
    shell.send("\r")
    print("after resize:", b"".join(shell.output()).decode().split("\r\n")[-2])
