"""`kruisebus events` lines: an event's data follows its message."""

from __future__ import annotations

from services.events_cli import data_text


def test_an_events_data_is_printed_after_its_message_in_its_own_order() -> None:
    data: dict[str, int | str] = {"budget": "free", "resourceVersion": "812", "maxUnavailable": 1, "unavailable": 1,
                                  "counted": "sidecar-1-14@790"}
    assert data_text(data) == "  budget=free resourceVersion=812 maxUnavailable=1 unavailable=1 counted=sidecar-1-14@790"
    assert data_text({}) == ""


def test_brackets_in_data_are_printed_not_taken_for_markup() -> None:
    assert data_text({"counted": "[bold]x"}) == "  counted=\\[bold]x"
