"""Embedded mode's broker and result backend: kombu's filesystem transport and Celery's
file backend, with each file written whole before anyone can see it.

kombu's filesystem ``Channel._put`` (5.7) creates the message file under its final name
and then writes it, while a consumer polling the folder moves and reads any file with a
matching name. Under load a consumer can take a file that is still empty, and the Celery
worker dies of the JSONDecodeError ("Unrecoverable error"): kbo's embedded coordinator
did, mid-snapshot. Here the message goes to a hidden temporary name that no queue
matches, then is renamed into place: a rename within one directory is atomic. Celery's
``FilesystemBackend.set`` has the same gap for the coordinator's replies.

Taking a message, kombu moves it to the system's temporary folder, then removes it
there: not atomic across filesystems, and, with the worker running as another user than
the coordinator, refused by /tmp's sticky bit. Here the consumer takes it by renaming it
to a hidden name in the same folder instead.

Whoever can write to the folder can put anything under a message's name: a symlink
(to /etc/shadow), a FIFO (whose open() blocks the consumer for ever), a huge file, or
bytes that are not JSON (which kill the consumer). The consumer reads only a regular
file of at most ``MAX_MESSAGE`` bytes, holding a JSON object with the fields of a kombu
message (``{}`` alone killed it with a KeyError); anything else is dropped with a
warning, and it goes on to the next message.
"""

from __future__ import annotations

import base64
import binascii
import errno
import logging
import os
import stat
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from celery.backends.filesystem import FilesystemBackend
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, ensure_bytes, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger("kbo.broker")

# Far above any message kbo sends (a report carries at most a 16 MiB log, in base64).
MAX_MESSAGE = 64 << 20


class NotAMessage(Exception):
    """A file under a message's name that is not one: dropped, never delivered."""


def read_message(path: str) -> Any:
    """The message in the file at ``path``, read without following a link, blocking on
    a FIFO or reading more than ``MAX_MESSAGE`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NotAMessage("is a symlink, not a regular file") from None
        raise NotAMessage(f"cannot be opened: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotAMessage("is not a regular file")
        if info.st_size > MAX_MESSAGE:
            raise NotAMessage(f"is larger than {MAX_MESSAGE} bytes")
        data = f.read(MAX_MESSAGE + 1)  # it may have grown since fstat
    if len(data) > MAX_MESSAGE:
        raise NotAMessage(f"is larger than {MAX_MESSAGE} bytes")
    try:
        payload = loads(bytes_to_str(data))
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both are
        raise NotAMessage(f"is not JSON: {e}") from None
    except RecursionError:  # "[[[[...": nested deeper than the decoder goes
        raise NotAMessage("is not JSON: nested too deep") from None
    if not isinstance(payload, dict):
        raise NotAMessage("is not a JSON object")
    if problem := _envelope_problem(payload):
        raise NotAMessage(f"is not a kombu message: {problem}")
    return payload


def _envelope_problem(payload: dict[str, Any]) -> str | None:
    """What in ``payload`` kombu's virtual transport would fail on, raising out of the
    consumer (KeyError on ``{}``), or None: the fields it reads, of the types it needs."""
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "no properties"
    if not isinstance(properties.get("delivery_tag"), str):
        return "no delivery tag"
    info = properties.get("delivery_info", {})
    if not isinstance(info, dict) or not all(
        isinstance(info.get(key, ""), str) for key in ("exchange", "routing_key")
    ):
        return "bad delivery info"
    for key, kind in (("headers", dict), ("content-type", str), ("content-encoding", str)):
        if payload.get(key) is not None and not isinstance(payload[key], kind):
            return f"bad {key}"
    body, encoding = payload.get("body"), properties.get("body_encoding")
    if body is not None and not isinstance(body, str):
        return "a body that is not text"
    if encoding not in (None, "utf-8", "base64"):
        return f"a body in {str(encoding)[:20]!r}"
    if encoding == "base64" and body:
        try:
            base64.b64decode(body, validate=True)
        except binascii.Error:
            return "a body that is not base64"
    return None


class Channel(filesystem.Channel):
    # kombu's own bases disagree on the parameter's name; this matches filesystem.Channel.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        temporary = os.path.join(folder, f".{uuid.uuid4()}.writing")
        try:
            with open(temporary, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, os.path.join(folder, name))
        except OSError as e:
            raise ChannelError(f"cannot add message {name!r} to {folder}") from e

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        wanted = f"{queue}.msg"
        folder = self.data_folder_in
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != wanted:
                continue
            taken = os.path.join(folder, f".{uuid.uuid4()}.taken")
            try:
                os.rename(os.path.join(folder, name), taken)
            except OSError:
                continue  # another consumer took it first
            try:
                payload = read_message(taken)
            except NotAMessage as e:
                log.warning("dropped %r from %s: it %s", name, folder, e)
                payload = None
            try:
                os.remove(taken)
            except OSError as e:
                raise ChannelError(f"cannot remove message {name!r} from {folder}") from e
            if payload is not None:
                return payload
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel


class ResultBackend(FilesystemBackend):  # type: ignore[misc]
    def set(self, key: bytes, value: Any) -> None:
        path = self._filename(key)
        temporary = path + b".writing-" + uuid.uuid4().hex.encode()
        with open(temporary, "wb") as f:
            f.write(ensure_bytes(value))
        os.replace(temporary, path)
