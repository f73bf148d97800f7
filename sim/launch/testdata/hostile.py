"""hostile.py IFACE HOST ME: a hostile peer, built with scapy.

Run in a tap run's namespace (ip netns exec), it sends, on IFACE (the TAP's
Linux side, where Linux is ME), frames to HOST (the simulated host) that no
sane peer sends: IPv4 headers with a bad IHL, lengths past the frame or
below the header, bad IP, TCP, UDP and ICMP checksums, overlapping
fragments and fragments that never end, TCP options of length 0 and 1 and
past the header, a data offset past the segment, SYN+FIN, and a SYN with
window scale 255. On two connections Linux opens to HOST:80, it sends an
RST and a SYN in the window but not at the next sequence number, which
RFC 5961 says the host must answer with a challenge ACK and otherwise
ignore, and an RST before the window, which it must drop silently; each
connection must still serve a request afterwards.

Its TCP segments and connections use ports just above Linux's ephemeral
range, so that nothing else in the namespace uses them, and it sniffs
those ports only, through a kernel filter (libpcap compiles it): a file
downloaded at the same time does not drown the sniffer.

It prints one JSON object: what it sent, by kind, and what it saw. It
sends to HOST only, on IFACE only, and runs for a few seconds.
"""

import json
import socket
import sys
import threading
import time

from scapy.all import (ARP, ICMP, IP, TCP, UDP, AsyncSniffer, Ether, Raw,
                       conf, get_if_hwaddr, sendp, srp1)

IFACE, HOST, ME = sys.argv[1], sys.argv[2], sys.argv[3]
PORT = 80  # httpd listens here
with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    BASE = max(61000, int(f.read().split()[1]) + 1)  # our ports: BASE to BASE+99
if BASE + 99 > 65535:
    sys.exit("hostile.py: Linux's ephemeral ports leave no room for ours")
conf.verb = 0

out = {"sent": {}, "seen": {}}
seen = []  # every TCP segment to or from HOST, with the time it came
seen_lock = threading.Lock()


def note(p):
    if IP in p and TCP in p and HOST in (p[IP].src, p[IP].dst):
        with seen_lock:
            seen.append((time.monotonic(), p))


def segments(since, sport=None, dport=None):
    """Segments from HOST seen since a time, to a port of ours."""
    with seen_lock:
        got = list(seen)
    return [p for t, p in got if t >= since and p[IP].src == HOST and
            (sport is None or p[TCP].sport == sport) and
            (dport is None or p[TCP].dport == dport)]


def send(kind, frames):
    frames = frames if isinstance(frames, list) else [frames]
    sendp(frames, iface=IFACE)
    out["sent"][kind] = out["sent"].get(kind, 0) + len(frames)


reply = srp1(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=HOST, psrc=ME),
             iface=IFACE, timeout=2, retry=3)
if reply is None:
    sys.exit("hostile.py: no ARP reply from " + HOST)
eth = Ether(src=get_if_hwaddr(IFACE), dst=reply[ARP].hwsrc, type=0x0800)
out["host_mac"] = reply[ARP].hwsrc


def ip(**kw):
    return IP(src=ME, dst=HOST, **kw)


def raw(pkt, patch=None):
    """The frame of an IP packet, its bytes patched after scapy built it."""
    b = bytearray(bytes(pkt))
    for off, v in (patch or {}).items():
        b[off] = v
    return eth / Raw(bytes(b))


def wait_for(cond, timeout=3.0):
    """Polls cond until it holds or timeout seconds pass; returns it."""
    deadline = time.monotonic() + timeout
    while not (ok := cond()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return ok


started = threading.Event()
sniffer = AsyncSniffer(iface=IFACE, prn=note, store=False, started_callback=started.set,
                       filter="tcp and host %s and portrange %d-%d" % (HOST, BASE, BASE + 99))
sniffer.start()
if not started.wait(5):
    sys.exit("hostile.py: the sniffer did not start")

syn = TCP(sport=BASE + 1, dport=PORT, flags="S", seq=1000)

# IPv4 headers that lie (pf refuses them as malformed, before ip).
send("ihl-below-5", raw(ip() / syn, {0: 0x44}))
send("ihl-past-packet", raw(ip() / syn, {0: 0x4F}))
send("total-length-past-frame", raw(ip(len=1400) / syn))
send("total-length-below-header", raw(ip(len=12) / syn))

# Checksums that do not verify.
send("bad-ip-checksum", raw(ip(chksum=0x1234) / syn))
send("bad-tcp-checksum", raw(ip() / TCP(sport=BASE + 2, dport=PORT, flags="S", chksum=0xDEAD)))
send("bad-udp-checksum", raw(ip() / UDP(sport=BASE + 3, dport=9, chksum=0xDEAD) / Raw(b"x" * 8)))
send("bad-icmp-checksum", raw(ip() / ICMP(type=8, chksum=0xDEAD) / Raw(b"y" * 8)))
send("udp-length-past-packet", raw(ip() / UDP(sport=BASE + 4, dport=9, len=400) / Raw(b"z" * 8)))

# TCP headers that lie: a data offset past the segment, and options of
# length 0, of length 1 and running past the header (each on a SYN to the
# listener, with a good checksum: scapy puts the raw bytes right after a
# 20-byte header whose data offset counts them).
send("tcp-offset-past-segment", raw(ip() / TCP(sport=BASE + 5, dport=PORT, flags="S", dataofs=15)))
for kind, opts in (("tcp-option-length-0", b"\x02\x00\x05\xb4"),
                   ("tcp-option-length-1", b"\x08\x01\x00\x00"),
                   ("tcp-option-past-header", b"\x01\x01\x02\x08")):
    send(kind, raw(ip() / TCP(sport=BASE + 6, dport=PORT, flags="S", dataofs=6) / Raw(opts)))

# SYN+FIN to the listener: nonsense, dropped without an answer.
t0 = time.monotonic()
send("syn-fin", raw(ip() / TCP(sport=BASE + 7, dport=PORT, flags="SF", seq=5000)))

# Window scale 255 (RFC 7323 says use 14): the host must still answer.
send("window-scale-255", raw(ip() / TCP(sport=BASE + 8, dport=PORT, flags="S", seq=7000,
                                         options=[("MSS", 1460), ("WScale", 255)])))

# Overlapping fragments of a UDP datagram: the second starts inside the
# first. The datagram is refused whole.
body = bytes(UDP(sport=BASE + 9, dport=9) / Raw(b"o" * 56))  # 64 bytes
send("overlapping-fragments", [
    raw(ip(id=0x1111, flags="MF", frag=0, proto=17) / Raw(body[:48])),
    raw(ip(id=0x1111, frag=2, proto=17) / Raw(body[16:])),
])

# Fragments that never end: one datagram's, more fragments always set,
# past 65535 bytes; then 250 datagrams of one fragment each, never
# completed, more than reassembly holds.
chunk = b"e" * 1480
send("endless-fragments-one-datagram",
     [raw(ip(id=0x2222, flags="MF", frag=k * 185, proto=17) / Raw(chunk)) for k in range(45)])
send("endless-fragments-many-datagrams",
     [raw(ip(id=0x3000 + k, flags="MF", frag=0, proto=17) / Raw(chunk)) for k in range(250)])

wait_for(lambda: [p for p in segments(t0, dport=BASE + 8) if p[TCP].flags == "SA"])
time.sleep(0.3)
out["seen"]["syn-fin answered"] = len(segments(t0, dport=BASE + 7))
wsr = [p for p in segments(t0, dport=BASE + 8) if p[TCP].flags == "SA"]
out["seen"]["window-scale-255 SYN-ACK"] = len(wsr)
if wsr:
    out["seen"]["window-scale-255 SYN-ACK's options"] = str(wsr[0][TCP].options)


def connection(lport):
    """A connection Linux opens from lport to HOST:PORT, and its first
    sequence number past the SYN (the host's RCV.NXT)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(5)
    s.bind((ME, lport))
    s.connect((HOST, PORT))

    def syns():
        with seen_lock:
            return [p for _, p in seen if p[IP].src == ME and p[TCP].sport == lport and p[TCP].flags == "S"]
    if not wait_for(syns):
        sys.exit("hostile.py: did not see Linux's SYN")
    return s, syns()[-1][TCP].seq + 1


def serves(s):
    """Whether the connection still serves a request."""
    s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nConnection: close\r\n\r\n")
    got = b""
    try:
        while chunk := s.recv(4096):
            got += chunk
    except OSError as e:
        out["seen"].setdefault("errors", []).append(str(e))
    s.close()
    return got.startswith(b"HTTP/1.1 200")


def challenged(kind, lport, rcvnxt, since):
    """Waits for the host's pure ACKs of RCV.NXT to lport since a time."""
    def acks():
        return [p for p in segments(since, sport=PORT, dport=lport)
                if p[TCP].flags == "A" and p[TCP].ack == rcvnxt]
    wait_for(acks)
    time.sleep(0.1)
    out["seen"][kind + " challenge ACKs"] = len(acks())


# An RST in the window but not at RCV.NXT: a challenge ACK, no reset.
lport = BASE + 20
s, rcvnxt = connection(lport)
time.sleep(0.1)
t1 = time.monotonic()
send("in-window-rst", raw(ip() / TCP(sport=lport, dport=PORT, flags="R", seq=rcvnxt + 1000)))
challenged("in-window-rst", lport, rcvnxt, t1)
# An RST before the window: dropped, no answer.
t2 = time.monotonic()
send("old-rst", raw(ip() / TCP(sport=lport, dport=PORT, flags="R", seq=rcvnxt - 5000)))
time.sleep(0.5)
out["seen"]["old-rst answered"] = len(segments(t2, sport=PORT, dport=lport))
out["seen"]["in-window-rst connection serves"] = serves(s)

# A SYN in the window of a synchronized connection: a challenge ACK too.
lport = BASE + 21
s, rcvnxt = connection(lport)
time.sleep(0.1)
t3 = time.monotonic()
send("in-window-syn", raw(ip() / TCP(sport=lport, dport=PORT, flags="S", seq=rcvnxt + 1000)))
challenged("in-window-syn", lport, rcvnxt, t3)
out["seen"]["in-window-syn connection serves"] = serves(s)

sniffer.stop()
print(json.dumps(out, indent=1))
