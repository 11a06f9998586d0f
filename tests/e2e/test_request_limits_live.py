"""Request limits on the real web server (gunicorn), not the test client (issue 13, item 5):
an oversized body is refused from its Content-Length before one byte of it is sent, and
gunicorn refuses an oversized request line and a header flood before Django."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from tests.support.stack import local_stack

pytestmark = pytest.mark.integration


def exchange(base_url: str, head: bytes, timeout: float = 20) -> bytes:
    """Send ``head`` (request line and headers, no body) and return what the server says."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_the_web_server_refuses_before_reading_what_it_would_refuse():
    with local_stack() as stack:
        host = urlsplit(stack.base_url).netloc.encode()
        # 300 MB announced, nothing sent: the 413 comes back while the body is still unsent,
        # so a slow or huge body never ties up the thread that would read it.
        answer = exchange(
            stack.base_url,
            b"POST /api/v1/predictions/ HTTP/1.1\r\nHost: " + host + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 300000000\r\n\r\n",
        )
        assert status_of(answer) == 413, answer[:300]

        long_line = b"GET /?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
        assert status_of(exchange(stack.base_url, long_line)) in (400, 414)

        flood = b"".join(b"X-Filler-%d: 1\r\n" % n for n in range(150))
        header_flood = b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n" + flood + b"\r\n"
        assert status_of(exchange(stack.base_url, header_flood)) in (400, 431)

        # The server is still fine afterwards.
        ok = exchange(stack.base_url, b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert status_of(ok) == 200
