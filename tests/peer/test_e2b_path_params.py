"""E2B's path parameter tests (packages/python-sdk/tests/shared/api/test_encode_path_param.py), on crownest.

E2B tests its `encode_path_param` helper's output; crownest encodes every path parameter in its
generated request builders, so the port checks the end-to-end result: the server gets the whole
value as one path segment and answers for that template (`template_not_found`), never from
another route (`not_found`).
"""

from __future__ import annotations

import pytest

from crownest import CrowNest, NotFoundError


def assert_one_segment(client: CrowNest, template_id: str) -> None:
    with pytest.raises(NotFoundError) as raised:
        client.templates.get(template_id)
    assert raised.value.code == "template_not_found"
    assert template_id in str(raised.value)


def test_leaves_simple_names_unchanged(local: CrowNest) -> None:
    """packages/python-sdk/tests/shared/api/test_encode_path_param.py::test_leaves_simple_names_unchanged"""
    assert local.templates.get("python").id == "python"


def test_keeps_unreserved_characters_unencoded(local: CrowNest) -> None:
    """packages/python-sdk/tests/shared/api/test_encode_path_param.py::test_keeps_unreserved_characters_unencoded"""
    assert_one_segment(local, "a-b_c.d~e")


@pytest.mark.parametrize("template_id", ["name:tag", "a b"])
def test_encodes_other_reserved_characters(local: CrowNest, template_id: str) -> None:
    """packages/python-sdk/tests/shared/api/test_encode_path_param.py::test_encodes_other_reserved_characters"""
    assert_one_segment(local, template_id)


@pytest.mark.parametrize(
    ("test", "template_id"),
    [
        ("test_encodes_slash_in_namespaced_id", "namespace/name"),
        ("test_encodes_every_slash_in_deeply_namespaced_id", "a/b/c"),
        ("test_encodes_namespaced_snapshot_id_with_tag", "team-slug/my-snapshot:default"),
    ],
)
def test_encodes_slashes(local: CrowNest, test: str, template_id: str) -> None:
    """packages/python-sdk/tests/shared/api/test_encode_path_param.py::test_encodes_slash_in_namespaced_id,
    ::test_encodes_every_slash_in_deeply_namespaced_id and ::test_encodes_namespaced_snapshot_id_with_tag"""
    assert_one_segment(local, template_id)
