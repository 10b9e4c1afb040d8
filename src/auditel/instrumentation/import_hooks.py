"""Call a function once a module has been imported: the zero-code start's lazy instrumentation.

wrapt's post-import hooks do this job for the patches themselves (``patching.Patcher``); but
importing wrapt costs ~20 ms (it imports asyncio), which every process started by ``auditel run``
would pay before it imports any framework. ``auditel.instrumentation.arm`` waits with this small
finder instead, for the few framework names it arms; wrapt is imported with the framework.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

Callback = Callable[[ModuleType], None]

_lock = threading.Lock()
_waiting: dict[str, list[Callback]] = {}


def when_imported(name: str, callback: Callback) -> None:
    """``callback(module)`` once module ``name`` has been imported (at once if it already is)."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return
    with _lock:
        _waiting.setdefault(name, []).append(callback)
        if not any(isinstance(f, _Watcher) for f in sys.meta_path):
            sys.meta_path.insert(0, _Watcher())


def _fire(name: str, module: ModuleType) -> None:
    with _lock:
        callbacks = _waiting.pop(name, [])
    for callback in callbacks:
        callback(module)  # the callbacks guard themselves: an import must never fail because of us


class _Watcher:
    """A meta-path finder that finds nothing itself: for a watched name it asks the other finders
    and wraps the loader so that the callbacks run right after the module has executed."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _waiting:
            return None
        for finder in list(sys.meta_path):
            if finder is self or isinstance(finder, _Watcher):
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, fullname)
        return spec


class _Loader:
    """The real loader, and then the callbacks; the module keeps the real loader as its own."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _fire(self._name, sys.modules.get(self._name, module))

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._loader, attr)
