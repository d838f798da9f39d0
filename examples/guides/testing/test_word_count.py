"""Testing your own code offline: the `crownest_local` fixture is a real CrowNest Local server.

Install `crownest[local]`, and pytest finds the fixture on its own.
"""

from word_count import count_words

from crownest_local import LocalServer


def test_count_words(crownest_local: LocalServer) -> None:
    with crownest_local.client() as client:
        assert count_words(client, "one two  three\nfour") == 4


def test_retries_survive_a_flaky_network(crownest_local: LocalServer) -> None:
    crownest_local.faults = 0.3  # 30 % of requests fail as networks and gateways do
    try:
        with crownest_local.client(max_retries=6) as client:
            assert count_words(client, "still counted") == 2
    finally:
        crownest_local.faults = 0.0
