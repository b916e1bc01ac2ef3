"""Route netlink's encoding and the kernel's words in its errors (bpfunits/sys/rtnl.py), without a kernel."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from bpfunits.sys import rtnl

HEADER = struct.Struct("=IHHII")


def test_an_attribute_is_its_length_type_and_value_padded_to_four_bytes():
    assert rtnl.attr(7, b"abc") == struct.pack("=HH", 7, 7) + b"abc\0"
    assert rtnl.attr(7, b"abcd") == struct.pack("=HH", 8, 7) + b"abcd"
    assert rtnl.attr_string(1, "bpf") == struct.pack("=HH", 8, 1) + b"bpf\0"
    assert rtnl.attr_s32(1, -1) == struct.pack("=HHi", 8, 1, -1)
    assert rtnl.attr_u32(3, 6) == struct.pack("=HHI", 8, 3, 6)


def test_a_nested_attribute_reads_back_as_its_attributes():
    inner = rtnl.attr_u32(6, 9) + rtnl.attr_string(7, "chain") + rtnl.attr_u32(8, 1)
    outer = rtnl.attr(rtnl.TCA_OPTIONS, inner)
    got = rtnl.attributes(rtnl.attributes(outer)[rtnl.TCA_OPTIONS])
    assert (rtnl.u32(got[6]), rtnl.string(got[7]), rtnl.u32(got[8])) == (9, "chain", 1)


def _error(code: int, flags: int, echoed: bytes, tlvs: bytes) -> rtnl.Message:
    request = HEADER.pack(HEADER.size + len(echoed), rtnl.RTM_NEWTFILTER, 0x405, 1, 0)
    return rtnl.Message(rtnl.NLMSG_ERROR, 1, memoryview(struct.pack("=i", -code) + request + echoed + tlvs), flags)


def test_the_kernels_words_after_a_capped_error():
    words = rtnl.attr_string(rtnl.NLMSGERR_ATTR_MSG, "Exclusivity flag on, cannot modify")
    message = _error(17, rtnl.NLM_F_CAPPED | rtnl.NLM_F_ACK_TLVS, b"", words)
    assert (rtnl.error_of(message), rtnl.said(message)) == (17, "Exclusivity flag on, cannot modify")


def test_the_kernels_words_after_the_echoed_request():
    # Without NETLINK_CAP_ACK the kernel echoes the request's payload (here 6 bytes, padded to 8)
    # before the words; an attribute-looking payload must not be taken for them.
    echoed = rtnl.attr_string(rtnl.NLMSGERR_ATTR_MSG, "x")[:6]
    words = rtnl.attr_string(rtnl.NLMSGERR_ATTR_MSG, "Peer MTU is too large to set XDP")
    message = _error(34, rtnl.NLM_F_ACK_TLVS, echoed + b"\0\0", words)
    assert rtnl.said(message) == "Peer MTU is too large to set XDP"


def test_no_words_without_the_ack_tlvs_flag():
    words = rtnl.attr_string(rtnl.NLMSGERR_ATTR_MSG, "ignored")
    assert rtnl.said(_error(22, rtnl.NLM_F_CAPPED, b"", words)) == ""


@given(st.binary(max_size=128), st.integers(0, 0xFFFF))
def test_an_error_of_any_bytes_reads_without_raising(body, flags):
    message = rtnl.Message(rtnl.NLMSG_ERROR, 1, memoryview(body), flags)
    assert isinstance(rtnl.said(message), str)
    assert isinstance(rtnl.error_of(message), int)
