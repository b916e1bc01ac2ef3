"""Ethernet frames for the example programs: IPv4/IPv6 with TCP, UDP or ICMP, optionally VLAN-tagged.

Lengths are right (IPv4 total length, ihl, IPv6 payload length); checksums are left 0, since
the examples never check them and BPF_PROG_TEST_RUN does not either.
"""

from __future__ import annotations

import ipaddress
import struct

ETH_P_IP, ETH_P_IPV6, ETH_P_ARP, ETH_P_8021Q = 0x0800, 0x86DD, 0x0806, 0x8100
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

DST_MAC = bytes.fromhex("02b0f0000002")
SRC_MAC = bytes.fromhex("02b0f0000001")
SERVER = "198.18.0.1"


def ethernet(ethertype: int, payload: bytes, *, vlan: int | None = None) -> bytes:
    tag = struct.pack("!HH", ETH_P_8021Q, vlan) if vlan is not None else b""
    return DST_MAC + SRC_MAC + tag + struct.pack("!H", ethertype) + payload


def ipv4(src: str, protocol: int, payload: bytes, *, dst: str = SERVER, options: bytes = b"") -> bytes:
    assert len(options) % 4 == 0, "IPv4 options come in 32-bit words"
    ihl = 5 + len(options) // 4
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        ihl * 4 + len(payload),
        0x1234,
        0x4000,  # DF, first (and only) fragment
        64,
        protocol,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + options + payload


def ipv6(src: str, next_header: int, payload: bytes, *, dst: str = "2001:db8::1") -> bytes:
    header = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(payload),
        next_header,
        64,
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return header + payload


def tcp(flags: int, *, sport: int = 40000, dport: int = 80) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)


def udp(payload: bytes = b"x" * 8, *, sport: int = 40000, dport: int = 53) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp_echo() -> bytes:
    return struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"


def tcp_v4(src: str, flags: int, *, vlan: int | None = None, options: bytes = b"", sport: int = 40000) -> bytes:
    """A TCP segment from `src` (port `sport`) to SERVER with `flags`, as an Ethernet frame."""
    return ethernet(ETH_P_IP, ipv4(src, IPPROTO_TCP, tcp(flags, sport=sport), options=options), vlan=vlan)


def syn(src: str, **kw) -> bytes:
    return tcp_v4(src, SYN, **kw)


def udp_v4(src: str, *, vlan: int | None = None) -> bytes:
    return ethernet(ETH_P_IP, ipv4(src, IPPROTO_UDP, udp()), vlan=vlan)


def icmp_v4(src: str) -> bytes:
    return ethernet(ETH_P_IP, ipv4(src, IPPROTO_ICMP, icmp_echo()))


def syn_v6(src: str = "2001:db8::2") -> bytes:
    return ethernet(ETH_P_IPV6, ipv6(src, IPPROTO_TCP, tcp(SYN)))


def icmp_v6(src: str = "2001:db8::2") -> bytes:
    return ethernet(ETH_P_IPV6, ipv6(src, IPPROTO_ICMPV6, icmp_echo()))


def arp() -> bytes:
    """An ARP request (who-has SERVER), which carries no IP protocol."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, SRC_MAC, bytes(4), bytes(6),
                       ipaddress.IPv4Address(SERVER).packed)
    return ethernet(ETH_P_ARP, body)
