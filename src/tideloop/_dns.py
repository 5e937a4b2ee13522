"""Name resolution: getaddrinfo/getnameinfo off the loop thread, numeric hosts inline.

Invariant: the inline path is taken only when the answer needs no network or file lookup
(numeric host or None, numeric port, no AI_CANONNAME), and it calls ``socket.getaddrinfo``
itself, so it returns exactly what the executor path would.
"""

from __future__ import annotations

import itertools
import logging
import socket
from typing import Any

logger = logging.getLogger("asyncio")

_HAS_IPv6 = hasattr(socket, "AF_INET6")


def _is_numeric_host(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return False
    if not isinstance(host, str) or not host or "%" in host:
        return False
    for af in (socket.AF_INET, socket.AF_INET6) if _HAS_IPv6 else (socket.AF_INET,):
        try:
            socket.inet_pton(af, host)
            return True
        except (OSError, ValueError):
            pass
    return False


def _is_numeric_port(port: Any) -> bool:
    if port is None or isinstance(port, int):
        return True
    if isinstance(port, bytes):
        return port.isdigit()
    return isinstance(port, str) and port.isdigit()


def ipaddr_info(host: Any, port: Any, family: int, type: int, proto: int,
                flowinfo: int = 0, scopeid: int = 0) -> Any:
    """The single addrinfo asyncio uses for an already-resolved IP, else None."""
    if proto not in {0, socket.IPPROTO_TCP, socket.IPPROTO_UDP} or host is None:
        return None
    if type == socket.SOCK_STREAM:
        proto = socket.IPPROTO_TCP
    elif type == socket.SOCK_DGRAM:
        proto = socket.IPPROTO_UDP
    else:
        return None
    if port is None or port == b"" or port == "":
        port = 0
    else:
        try:
            port = int(port)
        except (TypeError, ValueError):
            return None  # a service name: let getaddrinfo look it up
    if family == socket.AF_UNSPEC:
        afs: list[int] = [socket.AF_INET, socket.AF_INET6] if _HAS_IPv6 else [socket.AF_INET]
    else:
        afs = [family]
    if isinstance(host, bytes):
        host = host.decode("idna")
    if "%" in host:
        return None  # inet_pton rejects zone indexes such as '::1%lo0'
    for af in afs:
        try:
            socket.inet_pton(af, host)
        except OSError:
            continue
        if _HAS_IPv6 and af == socket.AF_INET6:
            return af, type, proto, "", (host, port, flowinfo, scopeid)
        return af, type, proto, "", (host, port)
    return None


def interleave_addrinfos(addrinfos: list[Any], first_address_family_count: int = 1) -> list[Any]:
    """Reorder addrinfos so that address families alternate (RFC 8305)."""
    by_family: dict[int, list[Any]] = {}
    for addr in addrinfos:
        by_family.setdefault(addr[0], []).append(addr)
    lists = list(by_family.values())
    reordered: list[Any] = []
    if first_address_family_count > 1:
        reordered.extend(lists[0][:first_address_family_count - 1])
        del lists[0][:first_address_family_count - 1]
    reordered.extend(a for a in itertools.chain.from_iterable(itertools.zip_longest(*lists))
                     if a is not None)
    return reordered


class DnsMixin:
    _debug: bool

    def _tl_getaddrinfo_debug(self, host: Any, port: Any, family: int, type: int,
                              proto: int, flags: int) -> Any:
        msg = f"{host}:{port!r} family={family!r} type={type!r} proto={proto!r} flags={flags!r}"
        t0 = self.time()  # type: ignore[attr-defined]
        addrinfo = socket.getaddrinfo(host, port, family, type, proto, flags)
        dt = self.time() - t0  # type: ignore[attr-defined]
        logger.debug("Getting address info %s took %.3fms: %r", msg, dt * 1e3, addrinfo)
        return addrinfo

    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[Any]:
        if (not flags & socket.AI_CANONNAME and _is_numeric_port(port)
                and _is_numeric_host(host)):
            # Nothing to look up: answer inline, with the very same call.
            return socket.getaddrinfo(host, port, family, type, proto, flags)
        func = self._tl_getaddrinfo_debug if self._debug else socket.getaddrinfo
        return await self.run_in_executor(  # type: ignore[attr-defined,no-any-return]
            None, func, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
        return await self.run_in_executor(  # type: ignore[attr-defined,no-any-return]
            None, socket.getnameinfo, sockaddr, flags)

    async def _ensure_resolved(self, address: Any, *, family: int = 0,
                               type: int = socket.SOCK_STREAM, proto: int = 0, flags: int = 0,
                               loop: Any = None) -> list[Any]:
        host, port = address[:2]
        info = ipaddr_info(host, port, family, type, proto, *address[2:])
        if info is not None:
            return [info]
        return await (loop or self).getaddrinfo(  # type: ignore[no-any-return]
            host, port, family=family, type=type, proto=proto, flags=flags)
