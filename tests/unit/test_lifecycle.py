"""The order state machine."""
import pytest

from fixbridge.fix.translate import EXEC_TYPE_CODE
from fixbridge.orders.lifecycle import EVENT_FOR, IllegalTransition, check
from fixbridge.orders.model import OrdStatus as S


@pytest.mark.parametrize("a, b", [(S.PENDING_NEW, S.NEW), (S.PENDING_NEW, S.REJECTED), (S.NEW, S.FILLED),
                                  (S.NEW, S.CANCELED), (S.NEW, S.EXPIRED), (S.NEW, S.PARTIALLY_FILLED),
                                  (S.PARTIALLY_FILLED, S.FILLED), (S.PARTIALLY_FILLED, S.CANCELED),
                                  (S.NEW, S.PENDING_CANCEL), (S.PENDING_CANCEL, S.CANCELED), (S.PENDING_CANCEL, S.FILLED)])
def test_legal(a, b):
    check(a, b)


@pytest.mark.parametrize("a, b", [(S.PENDING_NEW, S.FILLED), (S.NEW, S.REJECTED), (S.NEW, S.PENDING_NEW),
                                  (S.FILLED, S.CANCELED), (S.CANCELED, S.FILLED), (S.REJECTED, S.NEW),
                                  (S.EXPIRED, S.NEW), (S.FILLED, S.FILLED)])
def test_illegal(a, b):
    with pytest.raises(IllegalTransition):
        check(a, b)


def test_terminal_states_and_their_exec_types():
    assert {s for s in S if s.terminal} == {S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED}
    codes = [EXEC_TYPE_CODE[EVENT_FOR[s]] for s in (S.NEW, S.CANCELED, S.EXPIRED, S.REJECTED, S.FILLED, S.PARTIALLY_FILLED)]
    assert codes == ["0", "4", "C", "8", "F", "F"]  # the domain's events, as the FIX edge writes them
