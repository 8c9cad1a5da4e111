"""Subject layout and the reversible token encoding (docs/bus.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.subjects import Subjects, decode_token, encode_token

SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-%_")


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("web", "web"),
        ("web-7f9c", "web-7f9c"),
        ("node-1.example.com", "node-1%2Eexample%2Ecom"),
        ("a_b", "a%5Fb"),
        ("_", "%5F"),
        ("100%", "100%25"),
        ("%2E", "%252E"),
        ("ä", "%C3%A4"),
        ("a b*>", "a%20b%2A%3E"),
        ("", "_"),
        (None, "_"),
    ],
)
def test_encode_token(name: str | None, token: str) -> None:
    assert encode_token(name) == token
    assert decode_token(token) == (name or "")


@pytest.mark.parametrize("bad", ["a.b", "a%2", "a%zz", "a*", "x y", "%FF", ">"])
def test_decode_rejects_malformed_tokens(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_token(bad)


@given(st.text(max_size=64))
def test_token_round_trip(name: str) -> None:
    token = encode_token(name)
    assert token and set(token) <= SAFE and "." not in token
    assert decode_token(token) == name


@given(st.text(min_size=1, max_size=16), st.text(min_size=1, max_size=16))
def test_distinct_names_give_distinct_tokens(a: str, b: str) -> None:
    assert (encode_token(a) == encode_token(b)) == (a == b)


def test_subject_builders() -> None:
    s = Subjects()
    assert s.stream("STATE") == "KB_STATE"
    assert s.state("default", "w-uid", "pod", "p-uid") == "kb.state.default.w-uid.pod.p-uid"
    assert s.state(None, None, "node", "n-uid") == "kb.state._._.node.n-uid"
    assert s.state_all() == "kb.state.>"
    assert s.command("default", "w-uid", "update-in-place") == "kb.cmd.default.w-uid.update-in-place"
    assert s.command_all() == "kb.cmd.>"
    assert s.node("node-1.example.com", "prepull") == "kb.node.node-1%2Eexample%2Ecom.prepull"
    assert s.node_all("n.1") == "kb.node.n%2E1.>" and s.node_all() == "kb.node.>"
    assert s.probe("ns", "p-uid", "healthy") == "kb.probe.ns.p-uid.healthy"
    assert s.probe_all() == "kb.probe.>"
    assert s.event("ns", "web.v2", "rejected") == "kb.events.ns.web%2Ev2.rejected"
    assert s.events_all() == "kb.events.>"


def test_prefix() -> None:
    s = Subjects("my-kb")
    assert s.stream("CMD") == "MY_KB_CMD"
    assert s.command("a", "b", "c") == "my-kb.cmd.a.b.c"
    for bad in ["", "a.b", "a*", "x y", "a_b"]:
        with pytest.raises(ValueError):
            Subjects(bad)


def test_parse() -> None:
    s = Subjects()
    assert s.parse("kb.state.default._.node.abc") == ["state", "default", "", "node", "abc"]
    assert s.parse(s.node("n.1", "prepull")) == ["node", "n.1", "prepull"]
    with pytest.raises(ValueError):
        s.parse("other.state.x")
    with pytest.raises(ValueError):
        s.parse("kb.state.a%2")


@given(
    st.one_of(st.none(), st.text(max_size=20)),
    st.one_of(st.none(), st.text(max_size=20)),
    st.text(min_size=1, max_size=20),
)
def test_state_subject_round_trip(ns: str | None, owner: str | None, uid: str) -> None:
    s = Subjects()
    subject = s.state(ns, owner, "pod", uid)
    assert len(subject.split(".")) == 6
    assert s.parse(subject) == ["state", ns or "", owner or "", "pod", uid]
