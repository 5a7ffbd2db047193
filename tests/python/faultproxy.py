"""A small fault-injecting HTTP/1.1 proxy for tests (stdlib only, one thread per connection).

It stands in front of a real server (moto_server) and is steered from the test, in process:

    proxy = FaultProxy("http://127.0.0.1:5000")     # proxy.url is what the code under test uses
    proxy.slow_down(3)                              # the next 3 requests get 503 SlowDown
    proxy.drop(2)                                   # the next 2 requests: connection closed, no answer
    proxy.stall(0.05)                               # every forwarded chunk waits 50 ms (both ways)
    proxy.hold(lambda r: "partNumber=" in r.target) # matching requests wait until release()
    proxy.error_in_200(1, lambda r: r.method == "POST")  # the next match: 200 with an <Error> body
    proxy.swallow(1, lambda r: r.method == "POST")  # the next match reaches the upstream; its answer
                                                    # is thrown away and the client waits, as held
    proxy.release(drop_held=True)                   # let them go (or close them unanswered)
    proxy.passthrough()                             # no faults at all
    proxy.requests                                  # every request seen: method, target, headers, fault

The client-to-server direction is parsed request by request (head, then a body framed by
Content-Length or chunked encoding), so faults apply to whole requests even on keep-alive
connections. Responses are pumped back unparsed. Faults never touch the upstream: an injected 503
or a dropped request is never seen by moto.
"""
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

CHUNK = 16 * 1024

SLOW_DOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    b"<RequestId>FAULTPROXY</RequestId><HostId>faultproxy</HostId></Error>"
)


@dataclass
class Request:
    method: str
    target: str
    headers: dict  # lower-case names
    fault: str = "pass"  # pass | 503 | drop | held | held-dropped | 200-error | swallowed
    time: float = field(default_factory=time.time)
    error_code: str = None  # the <Code> of a 200-error answer

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)


class _Closed(Exception):
    pass


class FaultProxy:
    def __init__(self, upstream_url):
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname, parts.port or 80)
        self._lock = threading.Condition()
        self._slow_down = 0
        self._drop = 0
        self._stall = 0.0
        self._hold = None  # predicate(Request) -> bool
        self._release_gen = 0
        self._drop_held_gen = set()
        self.requests = []
        self._error_200 = None  # [count, predicate, code]
        self._swallow = None  # [count, predicate]
        self.injected = {"503": 0, "drop": 0, "held": 0, "200-error": 0, "swallowed": 0}
        self._sockets = set()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True, name="faultproxy-accept").start()

    # ---- control -------------------------------------------------------------------------------

    def passthrough(self):
        """No more faults; held requests are released and forwarded."""
        with self._lock:
            self._error_200 = self._swallow = None
            self._slow_down = self._drop = 0
            self._stall = 0.0
            self._hold = None
            self._release_gen += 1
            self._lock.notify_all()

    def slow_down(self, n):
        """The next `n` requests get `503 SlowDown` (S3 XML body) and the connection is closed."""
        with self._lock:
            self._slow_down = n

    def drop(self, n):
        """The next `n` requests are read and then the connection is closed without an answer."""
        with self._lock:
            self._drop = n

    def stall(self, seconds_per_chunk):
        """Delay every forwarded chunk (16 KiB at most) by this many seconds, in both directions."""
        with self._lock:
            self._stall = seconds_per_chunk

    def error_in_200(self, n, predicate=None, code="InternalError"):
        """The next `n` requests matching `predicate` (all when None) are answered `200 OK` with an
        S3 `<Error>` body, as S3 may answer CopyObject and CompleteMultipartUpload once the work is
        under way; with `code=None` the body has no `<Code>`. They never reach the upstream."""
        with self._lock:
            self._error_200 = [n, predicate or (lambda r: True), code]

    def swallow(self, n, predicate=None):
        """The next `n` requests matching `predicate` (all when None) are sent to the upstream,
        which acts on them, but its answer is thrown away: the client waits until `release()`,
        which closes its connection unanswered. A request that took effect, and its sender never
        learned."""
        with self._lock:
            self._swallow = [n, predicate or (lambda r: True)]

    def hold(self, predicate=None):
        """Requests for which `predicate(request)` is true (all when None) wait before anything of
        them reaches the upstream, until `release()`."""
        with self._lock:
            self._hold = predicate or (lambda r: True)

    def release(self, drop_held=False):
        """Stop holding. Held requests are forwarded, or with `drop_held` closed unanswered (use that
        after the client that sent them died: half-read bodies must never reach the upstream)."""
        with self._lock:
            self._hold = None
            if drop_held:
                self._drop_held_gen.add(self._release_gen)
            self._release_gen += 1
            self._lock.notify_all()

    def wait_for(self, predicate, timeout=60):
        """Wait until a request matching `predicate` has been seen; return it, or None."""
        deadline = time.time() + timeout
        with self._lock:
            while True:
                for r in self.requests:
                    if predicate(r):
                        return r
                left = deadline - time.time()
                if left <= 0:
                    return None
                self._lock.wait(min(left, 0.2))

    def held_count(self):
        with self._lock:
            return sum(1 for r in self.requests if r.fault == "held")

    def close(self):
        self._closed = True
        self.passthrough()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._sockets)
        for s in socks:
            _close(s)

    # ---- plumbing ------------------------------------------------------------------------------

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True, name="faultproxy-conn").start()

    def _serve(self, client):
        upstream = None
        reader = _Reader(client)
        try:
            while True:
                head = reader.read_head()
                if head is None:
                    return
                request, raw_head = head
                fault = self._decide(request)
                if fault == "503":
                    if request.header("expect", "").lower() != "100-continue":
                        _read_body(reader, request)
                    body = SLOW_DOWN_BODY
                    client.sendall(
                        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                        + body
                    )
                    return
                if fault == "drop":
                    return
                if fault == "200-error":
                    if request.header("expect", "").lower() != "100-continue":
                        _read_body(reader, request)
                    body = _error_body(request.error_code)
                    client.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
                        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                        + body
                    )
                    return
                if fault == "swallowed":
                    sink = socket.create_connection(self.upstream)
                    with self._lock:
                        self._sockets.add(sink)
                    self._send(sink, raw_head)
                    _read_body(reader, request, lambda data: self._send(sink, data))
                    threading.Thread(target=_discard, args=(sink,), daemon=True,
                                     name="faultproxy-swallow").start()
                    gen = self._release_gen
                    with self._lock:
                        while self._release_gen == gen and not self._closed:
                            self._lock.wait(0.2)
                    return  # the client never gets an answer
                if fault == "held":
                    gen = self._release_gen
                    with self._lock:
                        while self._release_gen == gen and not self._closed:
                            self._lock.wait(0.2)
                        dropped = gen in self._drop_held_gen
                    if dropped:
                        request.fault = "held-dropped"
                        return
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    with self._lock:
                        self._sockets.add(upstream)
                    threading.Thread(target=self._pump_back, args=(upstream, client), daemon=True,
                                     name="faultproxy-back").start()
                self._send(upstream, raw_head)
                _read_body(reader, request, lambda data: self._send(upstream, data))
        except (_Closed, OSError):
            return
        finally:
            _close(client)
            if upstream is not None:
                _close(upstream)
            with self._lock:
                self._sockets.discard(client)
                self._sockets.discard(upstream)

    def _decide(self, request):
        with self._lock:
            if self._slow_down > 0:
                self._slow_down -= 1
                request.fault = "503"
                self.injected["503"] += 1
            elif self._drop > 0:
                self._drop -= 1
                request.fault = "drop"
                self.injected["drop"] += 1
            elif self._error_200 and self._error_200[0] > 0 and self._error_200[1](request):
                self._error_200[0] -= 1
                request.fault = "200-error"
                request.error_code = self._error_200[2]
                self.injected["200-error"] += 1
            elif self._swallow and self._swallow[0] > 0 and self._swallow[1](request):
                self._swallow[0] -= 1
                request.fault = "swallowed"
                self.injected["swallowed"] += 1
            elif self._hold is not None and self._hold(request):
                request.fault = "held"
                self.injected["held"] += 1
            self.requests.append(request)
            self._lock.notify_all()
            return request.fault

    def _send(self, sock, data):
        if not data:
            return
        stall = self._stall
        if stall:
            for i in range(0, len(data), CHUNK):
                time.sleep(self._stall)
                sock.sendall(data[i:i + CHUNK])
        else:
            sock.sendall(data)

    def _pump_back(self, upstream, client):
        try:
            while True:
                data = upstream.recv(CHUNK)
                if not data:
                    break
                self._send(client, data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(CHUNK)
        if not data:
            raise _Closed()
        self.buf += data

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            try:
                self._fill()
            except _Closed:
                return None
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return Request(method, target, headers), raw + b"\r\n\r\n"

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def read_exact(self, n, sink):
        """Read n bytes, handing them to sink(data) as they come."""
        while n > 0:
            if not self.buf:
                self._fill()
            take, self.buf = self.buf[:n], self.buf[n:]
            n -= len(take)
            sink(take)


def _read_body(reader, request, forward=None):
    """Consume one request body from `reader`, handing it to `forward(data)` when given."""
    def sink(data):
        if forward is not None:
            forward(data)

    if "chunked" in request.header("transfer-encoding", "").lower():
        while True:
            size_line = reader.read_line()
            sink(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # trailers, up to an empty line
                while True:
                    line = reader.read_line()
                    sink(line)
                    if line == b"\r\n":
                        return
            reader.read_exact(size + 2, sink)
    else:
        length = int(request.header("content-length", "0") or 0)
        reader.read_exact(length, sink)


def _discard(sock):
    """Read and drop everything `sock` sends until it closes."""
    try:
        while sock.recv(CHUNK):
            pass
    except OSError:
        pass
    finally:
        _close(sock)


def _error_body(code):
    code_element = f"<Code>{code}</Code>" if code else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error>{code_element}<Message>We encountered an internal error. Please try again.</Message>"
        "<RequestId>FAULTPROXY</RequestId><HostId>faultproxy</HostId></Error>"
    ).encode()


def _close(sock):
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
