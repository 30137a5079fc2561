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
"""

from __future__ import annotations

import os
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from celery.backends.filesystem import FilesystemBackend
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, ensure_bytes, str_to_bytes
from kombu.utils.json import dumps, loads


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
                with open(taken, "rb") as f:
                    payload = f.read()
                os.remove(taken)
            except OSError as e:
                raise ChannelError(f"cannot read message {name!r} from {folder}") from e
            return loads(bytes_to_str(payload))
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
