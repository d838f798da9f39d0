"""Code under test: counts the words of a text in a CrowNest sandbox."""

from crownest import CrowNest


def count_words(client: CrowNest, text: str) -> int:
    with client.sandboxes.create(template="base") as sandbox:
        sandbox.files.write("input.txt", text)
        result = sandbox.commands.run("wc -w < input.txt", check=True)
        return int(result.stdout)
