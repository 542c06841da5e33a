"""Port numbers as the kernel writes them: ranges and reserved-port lists.

Containing no /proc reads: callers pass the text of ip_local_port_range or
ip_local_reserved_ports, and get numbers back.
"""

from __future__ import annotations

import re

from portstorm.core.errors import UsageError


def parse_port_range(text: str) -> tuple[int, int]:
    """``"32768 60999"`` (the kernel's form, tab or spaces) or ``"32768-60999"`` -> (low, high)."""
    m = re.fullmatch(r"\s*(\d{1,5})\s*(?:-|\s)\s*(\d{1,5})\s*", text)
    if not m:
        raise UsageError(f"port range {text!r} is malformed: expected LOW-HIGH or 'LOW HIGH'")
    low, high = int(m.group(1)), int(m.group(2))
    if not (1 <= low <= 65535 and 1 <= high <= 65535):
        raise UsageError(f"port range {text!r}: ports must be within 1-65535")
    if high < low:
        raise UsageError(f"port range {text!r}: high {high} is below low {low}")
    return low, high


def parse_port_list(text: str) -> frozenset[int]:
    """ip_local_reserved_ports' form, ``"8080,9000-9010"`` (may be empty) -> the ports."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if "-" in part:
            low, high = parse_port_range(part)
            out.update(range(low, high + 1))
        else:
            if not part.isdigit() or not 1 <= int(part) <= 65535:
                raise UsageError(f"reserved port {part!r} is not a port number in 1-65535")
            out.add(int(part))
    return frozenset(out)
