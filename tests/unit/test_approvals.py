"""An approval's terms read back from its signed call (recovery tracks a journaled approval again)."""
from __future__ import annotations

import pytest
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from fixbridge.engine.approvals import approved_by
from fixbridge.engine.markets import MAX_UINT256, approve_calldata


@given(spender=st.binary(min_size=20, max_size=20), amount=st.integers(min_value=0, max_value=MAX_UINT256))
def test_approved_by_reads_back_what_approve_calldata_wrote(spender, amount):
    address = to_checksum_address(spender)
    assert approved_by(approve_calldata(address, amount)) == (address, amount)


@pytest.mark.parametrize("data", [b"", b"\x00" * 68, approve_calldata("0x" + "11" * 20, 5)[:-1]])
def test_approved_by_refuses_anything_else(data):
    with pytest.raises(ValueError):
        approved_by(data)
