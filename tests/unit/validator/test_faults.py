"""The fault bookkeeping of a validator (pure core)."""

from __future__ import annotations

from services.validator.core.faults import EQUIVOCATION, Fault, FaultBoard


def test_a_refusal_clears_when_the_head_moves_an_alarm_does_not() -> None:
    board = FaultBoard()
    board.report(Fault("BlockSignatureError", 3, {"height": 3}))
    assert board.current is not None
    assert board.current.to_json() == {"reason": "BlockSignatureError", "height": 3}
    board.head_moved()
    assert board.current is None
    alarm = Fault(EQUIVOCATION, 2, {})
    board.report(alarm)
    board.report(Fault("LogRootError", 4, {}))  # never hides the alarm
    board.head_moved()
    assert board.current == alarm


def test_restore_shows_alarms_and_refusals_still_ahead_of_the_head() -> None:
    for latest, head, shown in (
        (Fault("LogRootError", 5, {}), 4, True),
        (Fault("LogRootError", 5, {}), 5, False),
        (Fault("BlockFormatError", None, {}), 9, True),
        (Fault(EQUIVOCATION, 1, {}), 9, True),
    ):
        board = FaultBoard()
        board.restore(latest, head=head)
        assert (board.current == latest) is shown
    board = FaultBoard()
    board.restore(None, head=0)
    assert board.current is None


def test_the_faults_own_reason_is_shown_and_an_admission_reason_beside_it() -> None:
    fault = Fault(
        "EventAdmissionError",
        7,
        {"error": "EventAdmissionError", "reason": "duplicate", "leaf_index": 2},
    )
    assert fault.to_json() == {
        "reason": "EventAdmissionError",
        "admission_reason": "duplicate",
        "error": "EventAdmissionError",
        "leaf_index": 2,
    }
    assert fault.evidence["reason"] == "duplicate"  # the stored evidence is left as it was
