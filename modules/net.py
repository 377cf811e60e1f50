# Network interface rates and host TCP health over the batch's shared sampling window.
#
# Runs on the target: standard library only, Python 3.6 syntax. Linux: /proc/net/dev,
# /proc/net/snmp, /proc/net/netstat and /proc/net/tcp{,6}; elsewhere the interface
# counters come from psutil.net_io_counters() when the batch provides psutil.
import fnmatch
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from ._utils import procfs, window

MODULE = {
    "summary": "Interface traffic, errors and drops per second; TCP retransmits, listen "
    "overflows, sockets by state",
    "window_option": "sample",
    "description": [
        "Takes two snapshots of the interface counters (/proc/net/dev) and of the host's "
        "TCP counters (/proc/net/snmp, /proc/net/netstat) at the start and the end of the "
        "batch's shared sampling window, and reports them per second.",
        "Interfaces are chosen by shell-style globs (`interfaces`); the default is every "
        "interface but the loopback `lo`. Without an interface suffix a rate is the sum "
        "over the chosen interfaces, so a packet that crosses a bridge and one of its ports "
        "(docker0 and a veth) counts once on each; each interface also has its own "
        "(rx_bytes_eth0).",
        "Host TCP: retrans_segs is RetransSegs per second and retrans_percent is "
        "RetransSegs / OutSegs over the window, as `nstat` and node_exporter's "
        "node_netstat_Tcp_RetransSegs count them (IPv4 and IPv6 alike: the kernel keeps "
        "one TCP MIB); listen_overflows and listen_drops are "
        "TcpExt ListenOverflows and ListenDrops per second (an accept queue that was full: "
        "the application does not accept fast enough).",
        "Sockets by state (sockets_established, sockets_time_wait, sockets_listen, ...) are "
        "counted from /proc/net/tcp and /proc/net/tcp6 at the end of the window, as "
        "`ss -tan` lists them. With `port`, only sockets whose local port is that port "
        "are counted: `port: 5432` counts the connections to a local PostgreSQL, and "
        "`connections` is the established ones among them.",
        "All of it is the network namespace the check runs in: inside a container, the "
        "container's interfaces and sockets.",
    ],
    "options": {
        "sample": {
            "type": "duration",
            "max": "1h",
            "default": "1s",
            "description": "Length of the sampling window.",
        },
        "interfaces": {
            "type": "list",
            "elements": "str",
            "description": "Shell-style globs of interface names (eth*, ens3, lo). "
            "Default: every interface but lo.",
        },
        "port": {
            "type": "int",
            "min": 1,
            "max": 65535,
            "description": "Count only TCP sockets with this local port (connections to "
            ":5432 on this host).",
        },
        "sockets": {
            "type": "bool",
            "default": True,
            "description": "Count TCP sockets by state. Reading /proc/net/tcp costs time "
            "on hosts with hundreds of thousands of sockets; false leaves it out.",
        },
    },
    "measurements": {
        "rx_bytes": {"unit": "B/s", "description": "Bytes received per second."},
        "tx_bytes": {"unit": "B/s", "description": "Bytes sent per second."},
        "rx_packets": {"unit": "/s", "description": "Packets received per second."},
        "tx_packets": {"unit": "/s", "description": "Packets sent per second."},
        "rx_errors": {"unit": "/s", "description": "Receive errors per second."},
        "tx_errors": {"unit": "/s", "description": "Transmit errors per second."},
        "rx_drops": {"unit": "/s", "description": "Received packets dropped per second."},
        "tx_drops": {"unit": "/s", "description": "Packets to send dropped per second."},
        "interfaces": {"unit": "", "description": "Interfaces measured."},
        "retrans_segs": {"unit": "/s", "description": "TCP segments retransmitted per second."},
        "retrans_percent": {
            "unit": "%",
            "description": "Retransmitted segments as a share of the segments sent.",
        },
        "out_segs": {"unit": "/s", "description": "TCP segments sent per second."},
        "listen_overflows": {
            "unit": "/s",
            "description": "Connections refused per second because an accept queue was full.",
        },
        "listen_drops": {
            "unit": "/s",
            "description": "SYNs dropped per second at a listening socket (overflows included).",
        },
        "sockets": {"unit": "", "description": "TCP sockets (of `port`, with it)."},
        "connections": {"unit": "", "description": "Established TCP sockets (of `port`)."},
        "sockets_*": {
            "unit": "",
            "description": "TCP sockets in one state: sockets_established, sockets_syn_sent, "
            "sockets_syn_recv, sockets_fin_wait1, sockets_fin_wait2, sockets_time_wait, "
            "sockets_close, sockets_close_wait, sockets_last_ack, sockets_listen, "
            "sockets_closing, sockets_new_syn_recv.",
        },
        "rx_bytes_*": {"unit": "B/s", "description": "rx_bytes of one interface."},
        "tx_bytes_*": {"unit": "B/s", "description": "tx_bytes of one interface."},
        "rx_packets_*": {"unit": "/s", "description": "rx_packets of one interface."},
        "tx_packets_*": {"unit": "/s", "description": "tx_packets of one interface."},
        "rx_errors_*": {"unit": "/s", "description": "rx_errors of one interface."},
        "tx_errors_*": {"unit": "/s", "description": "tx_errors of one interface."},
        "rx_drops_*": {"unit": "/s", "description": "rx_drops of one interface."},
        "tx_drops_*": {"unit": "/s", "description": "tx_drops of one interface."},
    },
    "default_metric": "rx_bytes",
    "facts": {
        "source": "Where the interface counters were read: procfs or psutil.",
        "window": "Seconds between the two snapshots.",
        "interfaces": "The interfaces measured.",
        "appeared": "Matching interfaces that appeared during the window.",
        "vanished": "Matching interfaces that vanished (or whose counters restarted).",
        "port": "With `port`: the local port the socket counts are restricted to.",
    },
}

EXAMPLES = """
- name: uplink not saturated (1 Gbit/s = 125 MB/s)
  net: {interfaces: [eth0], sample: 5s}
  metric: tx_bytes
  warn: 100000000

- name: no receive drops
  net: {}
  metric: rx_drops
  crit: 0

- name: TCP retransmissions
  net: {sample: 10s}
  metric: retrans_percent
  warn: 2
  crit: 5

- name: accept queue overflows
  net: {}
  metric: listen_overflows
  crit: 0

- name: connections to PostgreSQL
  net: {port: 5432}
  metric: connections
  warn: 180
  crit: 195
"""

# /proc/net/dev columns (net/core/net-procfs.c: dev_seq_printf_stats).
NET_DEV_FIELDS = (
    "rx_bytes",
    "rx_packets",
    "rx_errs",
    "rx_drop",
    "rx_fifo",
    "rx_frame",
    "rx_compressed",
    "rx_multicast",
    "tx_bytes",
    "tx_packets",
    "tx_errs",
    "tx_drop",
    "tx_fifo",
    "tx_colls",
    "tx_carrier",
    "tx_compressed",
)
# measurement -> /proc/net/dev column
RATES = (
    ("rx_bytes", "rx_bytes"),
    ("tx_bytes", "tx_bytes"),
    ("rx_packets", "rx_packets"),
    ("tx_packets", "tx_packets"),
    ("rx_errors", "rx_errs"),
    ("tx_errors", "tx_errs"),
    ("rx_drops", "rx_drop"),
    ("tx_drops", "tx_drop"),
)
# include/net/tcp_states.h, the `st` column of /proc/net/tcp in hex.
TCP_STATES = {
    1: "established",
    2: "syn_sent",
    3: "syn_recv",
    4: "fin_wait1",
    5: "fin_wait2",
    6: "time_wait",
    7: "close",
    8: "close_wait",
    9: "last_ack",
    10: "listen",
    11: "closing",
    12: "new_syn_recv",
}
DEFAULT_EXCLUDED = ("lo",)
UNITS = dict((name, "B/s" if name.endswith("_bytes") else "/s") for name, _ in RATES)


def parse_net_dev(text: str) -> Dict[str, Dict[str, int]]:
    """/proc/net/dev as {interface: {column: value}} (the two header lines skipped)."""
    interfaces = {}
    for line in text.splitlines():
        name, colon, counters = line.partition(":")
        if not colon or "|" in line:
            continue
        values = [int(value) for value in counters.split()]
        if len(values) != len(NET_DEV_FIELDS):
            raise ValueError(
                "interface %s has %d columns in /proc/net/dev, expected %d"
                % (name.strip(), len(values), len(NET_DEV_FIELDS))
            )
        interfaces[name.strip()] = dict(zip(NET_DEV_FIELDS, values))
    return interfaces


def parse_snmp(text: str) -> Dict[str, Dict[str, int]]:
    """/proc/net/snmp or /proc/net/netstat: pairs of "Proto: names" and "Proto: values"
    lines, as {"Tcp": {"RetransSegs": 131, ...}, "TcpExt": {...}}."""
    tables: Dict[str, Dict[str, int]] = {}
    header: Optional[Tuple[str, List[str]]] = None
    for line in text.splitlines():
        proto, colon, rest = line.partition(":")
        if not colon:
            continue
        fields = rest.split()
        if header is None or header[0] != proto:
            header = (proto, fields)
            continue
        if len(fields) != len(header[1]):
            raise ValueError("%s: %d values for %d names" % (proto, len(fields), len(header[1])))
        tables[proto] = dict(zip(header[1], [int(value) for value in fields]))
        header = None
    return tables


def parse_tcp_sockets(text: str) -> List[Tuple[int, str]]:
    """/proc/net/tcp or tcp6 as [(local port, state name)], one per socket."""
    sockets = []
    for line in text.splitlines()[1:]:
        parts = line.split(None, 4)
        if len(parts) < 4:
            continue
        port = int(parts[1].rpartition(":")[2], 16)
        state = int(parts[3], 16)
        sockets.append((port, TCP_STATES.get(state, "state_%d" % state)))
    return sockets


def count_states(sockets: List[Tuple[int, str]], port: Optional[int]) -> Dict[str, int]:
    """sockets_<state> counts for every state (0 when none), plus the total `sockets` and
    `connections` (established), of the sockets whose local port is `port` if given."""
    counts = dict(("sockets_" + name, 0) for name in TCP_STATES.values())
    for local_port, state in sockets:
        if port is None or local_port == port:
            counts["sockets_" + state] = counts.get("sockets_" + state, 0) + 1
    counts["sockets"] = sum(counts.values())
    counts["connections"] = counts["sockets_established"]
    return counts


def tcp_rates(
    before: Dict[str, Dict[str, int]], after: Dict[str, Dict[str, int]], seconds: float
) -> Dict[str, float]:
    """Host TCP figures between two parse_snmp() results (snmp and netstat merged)."""
    rates: Dict[str, float] = {}
    tcp_before, tcp_after = before.get("Tcp", {}), after.get("Tcp", {})
    if "RetransSegs" in tcp_after and "RetransSegs" in tcp_before:
        retrans = max(0, tcp_after["RetransSegs"] - tcp_before["RetransSegs"])
        out = max(0, tcp_after["OutSegs"] - tcp_before["OutSegs"])
        rates["retrans_segs"] = retrans / seconds
        rates["out_segs"] = out / seconds
        rates["retrans_percent"] = 100.0 * retrans / out if out else 0.0
    ext_before, ext_after = before.get("TcpExt", {}), after.get("TcpExt", {})
    for name, counter in (("listen_overflows", "ListenOverflows"), ("listen_drops", "ListenDrops")):
        if counter in ext_after and counter in ext_before:
            rates[name] = max(0, ext_after[counter] - ext_before[counter]) / seconds
    return rates


def interface_rates(
    before: Dict[str, int], after: Dict[str, int], seconds: float
) -> Optional[Dict[str, float]]:
    """Per-second rates of one interface; None when a counter went backwards (the interface
    was re-created, or a 32-bit counter wrapped: neither gives a rate)."""
    rates = {}
    for name, column in RATES:
        delta = after[column] - before[column]
        if delta < 0:
            return None
        rates[name] = delta / seconds
    return rates


def chosen(interfaces: Dict[str, Any], globs: Optional[List[str]]) -> List[str]:
    """The interfaces the check covers: matching `globs`, or all but lo without them."""
    if not globs:
        return [name for name in interfaces if name not in DEFAULT_EXCLUDED]
    return [name for name in interfaces if any(fnmatch.fnmatchcase(name, g) for g in globs)]


def _read_tables(proc_root: str) -> Dict[str, Dict[str, int]]:
    tables: Dict[str, Dict[str, int]] = {}
    for name in ("snmp", "netstat"):
        try:
            tables.update(parse_snmp(procfs.read_text(os.path.join(proc_root, "net", name))))
        except OSError:
            pass  # no IPv4 (snmp) or an old kernel (netstat): those figures are left out
    return tables


def _psutil_interfaces(psutil: Any) -> Dict[str, Dict[str, int]]:
    found = {}
    for name, io in psutil.net_io_counters(pernic=True).items():
        found[name] = {
            "rx_bytes": io.bytes_recv,
            "tx_bytes": io.bytes_sent,
            "rx_packets": io.packets_recv,
            "tx_packets": io.packets_sent,
            "rx_errs": io.errin,
            "tx_errs": io.errout,
            "rx_drop": io.dropin,
            "tx_drop": io.dropout,
        }
    return found


def sample(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    """{"source", "taken", "interfaces": parse_net_dev's shape, "tables": parse_snmp's}."""
    dev = os.path.join(ctx.proc_root, "net", "dev")
    if ctx.psutil is not None and not os.path.exists(dev):
        interfaces = _psutil_interfaces(ctx.psutil)
        return {
            "source": "psutil",
            "taken": time.monotonic(),
            "interfaces": interfaces,
            "tables": {},
        }
    try:
        interfaces = parse_net_dev(procfs.read_text(dev))
    except OSError as exc:
        raise RuntimeError(
            "cannot read %s (%s); on systems without procfs install psutil on the target"
            % (dev, exc.strerror or exc)
        ) from exc
    return {
        "source": "procfs",
        "taken": time.monotonic(),
        "interfaces": interfaces,
        "tables": _read_tables(ctx.proc_root),
    }


def read_sockets(proc_root: str) -> List[Tuple[int, str]]:
    sockets = []
    for name in ("tcp", "tcp6"):
        try:
            sockets += parse_tcp_sockets(procfs.read_text(os.path.join(proc_root, "net", name)))
        except OSError:
            pass  # IPv6 disabled: no tcp6
    return sockets


def _summary(
    measurements: Dict[str, float], names: List[str], elapsed: float, port: Optional[int]
) -> str:
    text = "%s over %.2fs: rx %s/s %.0f pkt/s, tx %s/s %.0f pkt/s" % (
        ", ".join(names) or "no interface",
        elapsed,
        window.format_bytes(measurements.get("rx_bytes", 0.0)),
        measurements.get("rx_packets", 0.0),
        window.format_bytes(measurements.get("tx_bytes", 0.0)),
        measurements.get("tx_packets", 0.0),
    )
    errors = sum(measurements.get(k, 0.0) for k in ("rx_errors", "tx_errors"))
    drops = sum(measurements.get(k, 0.0) for k in ("rx_drops", "tx_drops"))
    if errors or drops:
        text += ", %.1f errors/s, %.1f drops/s" % (errors, drops)
    if "retrans_percent" in measurements:
        text += "; TCP retransmits %.2f%% (%.1f/s)" % (
            measurements["retrans_percent"],
            measurements["retrans_segs"],
        )
    if measurements.get("listen_overflows"):
        text += ", %.1f listen overflows/s" % measurements["listen_overflows"]
    if "sockets" in measurements:
        text += "; %s%d established, %d time_wait, %d listening" % (
            ":%d " % port if port else "",
            measurements["sockets_established"],
            measurements["sockets_time_wait"],
            measurements["sockets_listen"],
        )
    return text


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    before, after, elapsed = window.snapshots(sample, args, ctx)
    if elapsed <= 0:
        raise RuntimeError("no time elapsed between the two snapshots; use a longer sample")
    globs = args.get("interfaces") or None
    port = args.get("port")
    names_before = chosen(before["interfaces"], globs)
    names_after = chosen(after["interfaces"], globs)
    if globs and not names_before and not names_after:
        raise RuntimeError(
            "no interface matches %s; interfaces here: %s"
            % (", ".join(globs), ", ".join(sorted(after["interfaces"])) or "none")
        )
    per_interface, appeared, vanished = window.per_item(
        before["interfaces"],
        after["interfaces"],
        names_before,
        names_after,
        lambda old, new: interface_rates(old, new, elapsed),
    )
    measured = list(per_interface)
    measurements: Dict[str, float] = dict((name, 0.0) for name, _ in RATES)
    units = {}
    for name, rates in per_interface.items():
        for field, value in rates.items():
            measurements[field] += value
            measurements["%s_%s" % (field, name)] = value
            units["%s_%s" % (field, name)] = UNITS[field]
    measurements["interfaces"] = len(measured)
    measurements.update(tcp_rates(before["tables"], after["tables"], elapsed))
    if args.get("sockets", True) and after["source"] == "procfs":
        measurements.update(count_states(read_sockets(ctx.proc_root), port))
    facts: Dict[str, Any] = {
        "source": after["source"],
        "window": round(elapsed, 3),
        "interfaces": measured,
        "appeared": appeared,
        "vanished": vanished,
    }
    if port:
        facts["port"] = port
    message = _summary(measurements, measured, elapsed, port)
    message += window.presence(appeared, vanished)
    return {
        "measurements": measurements,
        "units": units,
        "facts": facts,
        "failures": [],
        "message": message,
    }
