"""The one patching mechanism of auditel's instrumentations.

``Patcher.patch(module, "Class.method", wrapper)`` wraps the target with a wrapt
``FunctionWrapper``: at once when the module is already imported, otherwise from a post-import
hook when (if ever) the application imports it. Instrumenting therefore never imports a
framework the application does not use, and a framework imported after ``instrument()`` is
still patched.

``unpatch_all()`` revokes everything: applied wrappers are removed (or, when another
instrumentation wrapped on top of ours, our layer is dropped from inside the chain, or switched
off), and hooks registered but not fired yet become no-ops. A missing target never breaks the
host's import: it is counted in ``status()`` (or skipped quietly when marked ``optional``, for
targets that exist only in some versions of a framework).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from auditel.instrumentation.base import adopt_tracer_provider, count_error, release_tracer_provider


def _resolve(module: Any, path: str) -> tuple[Any, str]:
    parent = module
    *owners, attr = path.split(".")
    for owner in owners:
        parent = getattr(parent, owner)
    return parent, attr


class Patcher:
    """wrapt wrappers applied now when the module is imported, else on import; all revocable."""

    def __init__(self, kind: str = "instrumentation") -> None:
        self.kind = kind
        self._lock = threading.Lock()
        self._generation = 0
        self._applied: list[tuple[Any, str, Any, wrapt.FunctionWrapper]] = []  # owner, attr, original, ours

    def patch(self, module_name: str, path: str, wrapper: Callable[..., Any], *, optional: bool = False) -> None:
        """Wrap ``module_name.path`` with ``wrapper(wrapped, instance, args, kwargs)``.

        ``optional``: the target may be missing in some versions of the framework; then it is
        skipped without counting an error."""
        generation = self._generation
        if module_name in sys.modules:
            self._apply(sys.modules[module_name], path, wrapper, generation, optional)
            return

        def hook(module: Any) -> None:
            self._apply(module, path, wrapper, generation, optional)

        wrapt.register_post_import_hook(hook, module_name)

    def wrap(self, module_name: str, path: str, wrapper: Callable[..., Any]) -> bool:
        """``patch`` for a target that exists only in some versions (the model-call SDKs' shape)."""
        self.patch(module_name, path, wrapper, optional=True)
        return True

    def _apply(self, module: Any, path: str, wrapper: Callable[..., Any], generation: int, optional: bool) -> None:
        with self._lock:
            if generation != self._generation:
                return  # uninstrumented since this hook was registered
            try:
                owner, attr = _resolve(module, path)
                original = (
                    owner.__dict__[attr] if isinstance(owner, type) and attr in owner.__dict__ else getattr(owner, attr)
                )
                if isinstance(original, wrapt.FunctionWrapper) and original._self_wrapper is wrapper:
                    return  # already ours
                ours = wrapt.FunctionWrapper(original, wrapper)
                ours._self_auditel = True  # type: ignore[attr-defined]  # tells our own wrappers apart
                setattr(owner, attr, ours)
                self._applied.append((owner, attr, original, ours))
            except AttributeError:
                if not optional:
                    count_error(f"{self.kind}_patch", AttributeError(f"{module.__name__}.{path} not found"))
            except Exception as exc:  # noqa: BLE001 - never break the host's import
                count_error(f"{self.kind}_patch", exc)

    def unpatch_all(self) -> None:
        with self._lock:
            self._generation += 1
            applied, self._applied = self._applied, []
            for owner, attr, original, ours in reversed(applied):
                active = getattr(ours._self_wrapper, "active", None)
                if isinstance(active, dict):
                    active["on"] = False  # bound copies cached by an SDK (with_raw_response) pass through
                try:
                    current = owner.__dict__.get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
                    if current is ours:
                        setattr(owner, attr, original)
                    else:
                        _drop_inner(owner, attr, ours)
                except Exception as exc:  # noqa: BLE001
                    count_error(f"{self.kind}_unpatch", exc)

    unwrap_all = unpatch_all  # the name genai's instrumentors used

    @property
    def applied(self) -> list[str]:
        return [f"{getattr(o, '__name__', o)}.{a}" for o, a, _, _ in self._applied]


def _drop_inner(owner: Any, attr: str, ours: wrapt.FunctionWrapper) -> None:
    """Another instrumentation wrapped on top of ours: drop our layer from inside the chain (our
    wrapper stays, switched off by its ``active`` flag, when the outer layer cannot be re-pointed)."""
    outer = owner.__dict__.get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
    while isinstance(outer, wrapt.FunctionWrapper):
        inner = outer.__wrapped__
        if inner is ours:
            try:
                outer.__wrapped__ = ours.__wrapped__
            except (AttributeError, TypeError):
                pass
            return
        outer = inner


# The name genai's instrumentors (and the provider instrumentations built on them) use.
Patches = Patcher


class PatchingInstrumentor(BaseInstrumentor):
    """Base of auditel's instrumentors: ``_apply(patcher)`` registers the wrappers on the instrumentor's
    own ``Patcher`` (hooked lazily); uninstrument revokes them all and stops using a ``tracer_provider``
    that ``instrument()`` was given."""

    requirements: Collection[str] = ()  # what instrumentation_dependencies() reports
    patch_kind = ""  # failures are counted as ``{patch_kind}_patch``; default: the class name

    def __init__(self) -> None:
        if not hasattr(self, "_patches"):  # BaseInstrumentor is a per-class singleton
            self._patches = Patcher(self.patch_kind or type(self).__name__)

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.requirements

    def _instrument(self, **kwargs: Any) -> None:
        adopt_tracer_provider(self, kwargs)
        self._apply(self._patches)  # post-import hooks: the framework is patched when (if) the app imports it

    def _uninstrument(self, **kwargs: Any) -> None:
        self._patches.unpatch_all()
        release_tracer_provider(self)

    def _apply(self, patcher: Patcher) -> None:
        raise NotImplementedError
