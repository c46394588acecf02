"""fixbridge.venues.abi writes by hand what eth_abi writes: the same bytes for the calls the
orders make, the same values decoded, and eth_abi's own refusal of what does not fit."""
import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_abi.exceptions import EncodingError
from eth_utils import to_checksum_address
from hypothesis import given, strategies as st

from fixbridge.venues import abi

addresses = st.binary(min_size=20, max_size=20).flatmap(lambda b: st.sampled_from(
    ["0x" + b.hex(), to_checksum_address(b), "0x" + b.hex().upper(), b]))
uints = st.one_of(st.integers(0, 2**256 - 1), st.sampled_from([0, 1, 2**256 - 1, 10**18]))
V2_SWAP = ["uint256", "uint256", "address[]", "address", "uint256"]


@given(uints, uints, st.lists(addresses, max_size=4), addresses, uints)
def test_a_v2_swap_encodes_to_eth_abis_bytes(amount, bound, path, to, deadline):
    args = [amount, bound, path, to, deadline]
    assert abi.encode(V2_SWAP, args) == abi_encode(V2_SWAP, args)


@given(st.lists(st.tuples(st.sampled_from(["uint256", "address", "bool", "uint256[]", "address[]"]), st.data()),
                max_size=6))
def test_any_mix_of_our_types_encodes_to_eth_abis_bytes(columns):
    types, args = [], []
    for typ, data in columns:
        one = {"uint256": uints, "address": addresses, "bool": st.booleans()}
        value = data.draw(st.lists(one[typ[:-2]], max_size=3) if typ.endswith("[]") else one[typ])
        types.append(typ)
        args.append(value)
    assert abi.encode(types, args) == abi_encode(types, args)


@pytest.mark.parametrize("types,args", [
    (["uint256"], [-1]),
    (["uint256"], [2**256]),
    (["uint256"], [True]),
    (["address"], ["0x" + "ab" * 19]),
    (["address[]"], [["not an address"]]),
    (["bool"], [1]),
])
def test_what_does_not_fit_is_refused_as_eth_abi_refuses_it(types, args):
    with pytest.raises(EncodingError):
        abi_encode(types, args)
    with pytest.raises(EncodingError):
        abi.encode(types, args)


def test_a_mixed_case_address_encodes_as_eth_abi_encodes_it_checksum_or_not():
    bad_checksum = "0xAbCdef0000000000000000000000000000000000"
    assert abi.encode(["address"], [bad_checksum]) == abi_encode(["address"], [bad_checksum])


def test_other_types_go_to_eth_abi():
    assert abi.encode(["string", "bytes32"], ["hi", b"\x01" * 32]) == abi_encode(["string", "bytes32"], ["hi", b"\x01" * 32])
    data = abi_encode(["address", "uint256"], ["0x" + "11" * 20, 5])
    assert abi.decode(["address", "uint256"], data) == abi_decode(["address", "uint256"], data)


@given(st.lists(uints, min_size=4, max_size=4), st.lists(uints, max_size=5))
def test_swap_logs_and_quotes_decode_as_eth_abi_decodes_them(words, amounts):
    data = abi_encode(["uint256"] * 4, words)
    assert abi.decode(["uint256"] * 4, data) == abi_decode(["uint256"] * 4, data) == tuple(words)
    data = abi_encode(["uint256[]"], [amounts])
    assert abi.decode(["uint256[]"], data) == abi_decode(["uint256[]"], data)


def test_data_too_short_or_pointing_outside_is_refused_as_eth_abi_refuses_it():
    bad = (64).to_bytes(32, "big") + (9).to_bytes(32, "big")  # an array of 9 words with none there
    for data in (b"\x00" * 31, bad):
        with pytest.raises(Exception) as ours:
            abi.decode(["uint256[]"], data)
        with pytest.raises(Exception) as theirs:
            abi_decode(["uint256[]"], data)
        assert type(ours.value) is type(theirs.value)
