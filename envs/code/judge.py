"""The judge that scores a code submission inside a sandbox session.

Standalone and stdlib-only on purpose: `harness.py` sends this file's source into a fresh
sandbox session and calls `main`. Two processes take part:

- the judge (this code, trusted) holds the hidden tests, runs the test code and writes one
  record per test to its stdout;
- the submission process, forked before any submission code runs, executes the submission
  and then only answers requests ("call this function with these arguments") with plain data.

So the submission never shares an address space with the tests: `sys._getframe().f_locals`
reaches only its own process. It holds none of the judge's file descriptors (its stdin,
stdout and stderr are /dev/null; its one channel is a pair of pipes whose messages the judge
reads as claims about the submission's own functions), and the judge is non-dumpable, so
/proc/PID/fd and /proc/PID/mem of the judge are closed to it: it cannot print or forge a
record. Every value crosses as plain data (None, bool, int, float, complex, str, bytes,
bytearray, list, tuple, set, frozenset, dict): the test code never holds a submission object
with a doctored `__eq__` or `__bool__`. Anything else stays in the submission process and the
judge sees an opaque reference that can be called, have attributes read, be iterated and be
passed back, but equals only itself and has no truth value. Arguments that the submission
mutates in place (lists, dicts, sets, bytearrays) are copied back after each call.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import json
import os
import select
import signal
import struct
import sys
import time
import types

_HDR = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024
MAX_DEPTH = 200
MAX_ITEMS = 1_000_000
_BIG = 1 << 8000  # ints beyond this travel as hex (decimal conversion is capped at 4300 digits)


class Unreachable(BaseException):
    """The submission process is gone or out of time (not an Exception: test code that catches
    Exception must not swallow it)."""


class SubmissionError(Exception):
    """A submission function raised an exception that is not a builtin one."""


# ----------------------------------------------------------------------------- plain data
def encode(value, to_ref, depth: int = 0):
    """JSON-able form of a plain-data value; `to_ref(value)` encodes anything else."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, int):
        n = int.__int__(value)
        return n if -_BIG < n < _BIG else {"int": hex(n)}
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, complex):
        return {"complex": [complex.real.__get__(value), complex.imag.__get__(value)]}
    if isinstance(value, bytes):
        return {"bytes": bytes.hex(value)}
    if isinstance(value, bytearray):
        return {"bytearray": bytearray.hex(value)}
    d = depth + 1
    if isinstance(value, list):
        return {"list": [encode(x, to_ref, d) for x in list.__iter__(value)]}
    if isinstance(value, tuple):
        return {"tuple": [encode(x, to_ref, d) for x in tuple.__iter__(value)]}
    if isinstance(value, frozenset):
        return {"frozenset": [encode(x, to_ref, d) for x in frozenset.__iter__(value)]}
    if isinstance(value, set):
        return {"set": [encode(x, to_ref, d) for x in set.__iter__(value)]}
    if isinstance(value, dict):
        items = dict.items(value)
        return {"dict": [[encode(k, to_ref, d), encode(v, to_ref, d)] for k, v in items]}
    return to_ref(value)


def decode(data, from_ref, depth: int = 0):
    """The value `encode` wrote; `from_ref(data)` rebuilds references."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if not isinstance(data, dict) or not data:
        raise ValueError("malformed value")
    if "ref" in data or "module" in data:
        return from_ref(data)
    ((kind, body),) = data.items()
    d = depth + 1
    if kind == "list":
        return [decode(x, from_ref, d) for x in body]
    if kind == "tuple":
        return tuple(decode(x, from_ref, d) for x in body)
    if kind == "set":
        return {decode(x, from_ref, d) for x in body}
    if kind == "frozenset":
        return frozenset(decode(x, from_ref, d) for x in body)
    if kind == "dict":
        return {decode(k, from_ref, d): decode(v, from_ref, d) for k, v in body}
    if kind == "int":
        return int(body, 16)
    if kind == "complex":
        return complex(float(body[0]), float(body[1]))
    if kind == "bytes":
        return bytes.fromhex(body)
    if kind == "bytearray":
        return bytearray.fromhex(body)
    raise ValueError(f"unknown value kind {kind!r}")


def no_refs(value):
    kind = value._type if isinstance(value, Remote) else type(value).__name__
    raise TypeError(f"the result is a {kind} object, not plain data")


def plain(data):
    """Decode data that must hold no references (what the host reads from the records)."""

    def refuse(ref):
        raise ValueError("a reference where plain data was expected")

    return decode(data, refuse)


# ----------------------------------------------------------------------------- framing
def _send(fd: int, obj) -> None:
    _send_bytes(fd, json.dumps(obj).encode())


def _send_bytes(fd: int, data: bytes) -> None:
    view = memoryview(_HDR.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv(fd: int, deadline: float | None = None):
    (size,) = _HDR.unpack(_read_exact(fd, _HDR.size, deadline))
    if size > MAX_FRAME:
        raise ValueError("message too large")
    return json.loads(_read_exact(fd, size, deadline))


def describe(exc: BaseException) -> str:
    return (type(exc).__name__ + ": " + str(exc))[:300]


# ----------------------------------------------------------------------------- submission side
def _serve(req: int, rep: int, submission: str, setup: str) -> None:
    """In the forked submission process: run the submission, then answer requests."""
    refs: dict[int, object] = {}

    def to_ref(value):
        if isinstance(value, types.ModuleType):
            return {"module": str(value.__name__)}
        refs[len(refs) + 1] = value
        return {"ref": len(refs), "type": type(value).__name__[:60]}

    def from_ref(data):
        return refs[data["ref"]]

    def reply(obj) -> None:
        try:
            data = json.dumps(obj).encode()
        except (TypeError, ValueError, RecursionError) as e:
            data = json.dumps({"ok": False, "type": "TypeError", "error": describe(e)}).encode()
        if len(data) > MAX_FRAME:
            data = b'{"ok": false, "type": "ValueError", "error": "value too large"}'
        _send_bytes(rep, data)

    ns = {"__name__": "__submission__", "__builtins__": builtins}
    try:
        exec(compile(submission, "<submission>", "exec"), ns)
        if setup:
            exec(compile(setup, "<test setup>", "exec"), ns)
    except BaseException as e:
        reply({"ok": False, "error": describe(e)})
        return
    reply({"ok": True})
    while True:
        try:
            msg = _recv(req)
        except (EOFError, OSError, ValueError):
            return
        try:
            op = msg["op"]
            if op == "names":
                found = {n: ns[n] for n in msg["names"] if n in ns}
                reply({"ok": True, "value": encode(found, to_ref)})
            elif op == "call":
                fn = refs[msg["ref"]]
                args = [decode(a, from_ref) for a in msg["args"]]
                kwargs = {k: decode(v, from_ref) for k, v in msg["kwargs"]}
                value = fn(*args, **kwargs)
                after = [
                    encode(a, to_ref) if i in msg["mutable"] else None for i, a in enumerate(args)
                ]
                reply({"ok": True, "value": encode(value, to_ref), "args": after})
            elif op == "getattr":
                reply({"ok": True, "value": encode(getattr(refs[msg["ref"]], msg["name"]), to_ref)})
            elif op == "iter":
                items = []
                for item in refs[msg["ref"]]:
                    if len(items) >= MAX_ITEMS:
                        raise ValueError(f"more than {MAX_ITEMS} items")
                    items.append(item)
                reply({"ok": True, "value": encode(items, to_ref)})
            else:
                reply({"ok": False, "type": "ValueError", "error": f"unknown op {op!r}"})
        except BaseException as e:
            reply({"ok": False, "type": type(e).__name__, "error": describe(e)})


# ----------------------------------------------------------------------------- judge side
class Remote:
    """An object that lives in the submission process: callable, attributes, iteration."""

    __slots__ = ("_link", "_ref", "_type")

    def __init__(self, link: Link, ref: int, type_name: str):
        self._link, self._ref, self._type = link, ref, type_name

    def __call__(self, *args, **kwargs):
        return self._link.call(self._ref, args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._link.ask({"op": "getattr", "ref": self._ref, "name": name})["value"]

    def __iter__(self):
        return iter(self._link.ask({"op": "iter", "ref": self._ref})["value"])

    def __bool__(self) -> bool:
        raise TypeError(f"the submission gave a {self._type} object where plain data was needed")

    def __repr__(self) -> str:
        return f"<submission {self._type} object>"


_MUTABLE = (list, dict, set, bytearray)


class Link:
    """The judge's end of the pipes to the submission process, with the time budget."""

    def __init__(self, submission: str, setup: str, deadline: float):
        self.deadline = deadline
        self.remotes: dict[int, Remote] = {}
        self.error: str | None = None
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the submission process
            try:
                _isolate(keep=(req_r, rep_w))
                _serve(req_r, rep_w, submission, setup)
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(rep_w)
        self.pid, self.req, self.rep = pid, req_w, rep_r
        try:
            ready = self._recv()
        except Unreachable as e:
            ready = {"ok": False, "error": f"{e} while loading the submission"}
        if not ready.get("ok"):
            self.error = str(ready.get("error", "the submission failed to load"))[:300]

    def _recv(self):
        try:
            return _recv(self.rep, self.deadline)
        except TimeoutError:
            self.kill()
            raise Unreachable("the submission process ran out of time") from None
        except (EOFError, OSError):
            self.kill()
            raise Unreachable("the submission process exited") from None
        except (ValueError, struct.error, RecursionError):
            self.kill()
            raise Unreachable("the submission process sent a malformed message") from None

    def ask(self, msg: dict) -> dict:
        if self.pid is None:
            raise Unreachable("the submission process is no longer running")
        try:
            _send(self.req, msg)
        except OSError:
            self.kill()
            raise Unreachable("the submission process exited") from None
        reply = self._recv()
        if not isinstance(reply, dict):
            raise Unreachable("the submission process sent a malformed message")
        if not reply.get("ok"):
            raise _rebuild(reply)
        try:
            reply["value"] = decode(reply.get("value"), self._remote)
        except (ValueError, TypeError, KeyError, RecursionError) as e:
            raise Unreachable(f"the submission process sent a malformed value ({e})") from None
        return reply

    def call(self, ref: int, args: tuple, kwargs: dict):
        mutable = [i for i, a in enumerate(args) if isinstance(a, _MUTABLE)]
        msg = {
            "op": "call",
            "ref": ref,
            "args": [encode(a, self._ref_of) for a in args],
            "kwargs": [[str(k), encode(v, self._ref_of)] for k, v in kwargs.items()],
            "mutable": mutable,
        }
        reply = self.ask(msg)
        after = reply.get("args") or []
        for i in mutable:
            if i < len(after) and after[i] is not None:
                _copy_into(args[i], decode(after[i], self._remote))
        return reply["value"]

    def lookup(self, names: list[str]) -> dict:
        found = self.ask({"op": "names", "names": names})["value"]
        return found if isinstance(found, dict) else {}

    def _remote(self, data):
        if "module" in data:
            module = sys.modules.get(str(data["module"]))
            if module is not None:  # the judge's own copy, never one the submission made
                return module
            data = {"ref": -1, "type": "module"}
        ref = int(data["ref"])
        if ref not in self.remotes:
            self.remotes[ref] = Remote(self, ref, str(data.get("type", "object"))[:60])
        return self.remotes[ref]

    def _ref_of(self, value):
        if isinstance(value, Remote) and value._link is self:
            return {"ref": value._ref}
        raise TypeError(f"cannot pass a {type(value).__name__} object to the submission")

    def kill(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.pid = None

    def close(self) -> None:
        for fd in (self.req, self.rep):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.kill()


def _copy_into(target, value) -> None:
    if isinstance(target, list) and isinstance(value, list):
        target[:] = value
    elif isinstance(target, dict | set) and type(value) is type(target):
        target.clear()
        target.update(value)
    elif isinstance(target, bytearray) and isinstance(value, bytearray):
        target[:] = value


def _rebuild(reply: dict) -> BaseException:
    """The exception a submission function raised, as the test code should see it."""
    name, text = str(reply.get("type", "")), str(reply.get("error", "the submission failed"))
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and name.isidentifier():
        try:
            return kind(text.partition(": ")[2] or text)
        except Exception:
            pass
    return SubmissionError(text)


def _isolate(keep: tuple[int, ...]) -> None:
    """In the submission process: /dev/null on 0-2 and no other descriptor but `keep`."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    last = 2
    for fd in sorted(set(keep)):
        os.closerange(last + 1, fd)
        last = fd
    os.closerange(last + 1, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)


def _non_dumpable() -> None:
    """PR_SET_DUMPABLE 0: processes of our uid cannot open /proc/<judge>/fd or /mem."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError, ImportError):
        pass


def free_names(sources: list[str]) -> list[str]:
    """Names the test code reads, except builtins: what the submission may provide."""
    names: set[str] = set()
    for src in sources:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        names.update(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))
    return sorted(n for n in names if not hasattr(builtins, n))


def main(config: dict) -> None:
    """Run the hidden tests of `config` against its submission; records go to stdout."""
    out = os.dup(1)  # our own copy: nothing below writes to it but `emit`
    mark, limit = config["mark"], int(config["limit"])
    tests = [(str(k), str(s)) for k, s in config["tests"]]

    def emit(record: dict) -> None:
        line = json.dumps(record)
        if len(line) > limit:
            line = json.dumps({"i": record["i"], "ok": False, "error": "value too large to report"})
        data = (mark + line + "\n").encode()
        while data:
            data = data[os.write(out, data) :]

    _non_dumpable()
    deadline = time.monotonic() + float(config["budget_s"])
    link = Link(config["submission"], config["setup"], deadline)
    try:
        if link.error is not None:
            emit({"i": -1, "error": link.error})
            return
        ns: dict = {"__name__": "__judge__", "__builtins__": builtins}
        try:
            names = free_names([config["setup"], *(src for _, src in tests)])
            entry = config.get("entry_point") or ""
            ns.update(link.lookup(sorted(set(names) | ({entry} if entry else set()))))
            if config["setup"]:
                exec(compile(config["setup"], "<test setup>", "exec"), ns)
        except BaseException as e:
            emit({"i": -1, "error": describe(e)})
            return
        for i, (kind, src) in enumerate(tests):
            try:
                if kind == "expr":
                    value = eval(compile(src, "<test>", "eval"), ns)
                    emit({"i": i, "ok": True, "value": encode(value, no_refs)})
                else:
                    exec(compile(src, "<test>", "exec"), ns)
                    emit({"i": i, "ok": True})
            except BaseException as e:
                emit({"i": i, "ok": False, "error": describe(e)})
    finally:
        link.close()
        os.close(out)
