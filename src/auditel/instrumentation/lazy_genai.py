"""Lazy hooking for the provider instrumentations (google-genai, LiteLLM, Bedrock).

``instrument()`` must not import a framework the application does not use: a
``LazyGenAIInstrumentor`` registers a wrapt post-import hook on its trigger module and wraps when
that module is imported (at once if it already is). ``uninstrument()`` undoes what was applied and
disarms hooks that have not fired yet (a generation counter: wrapt hooks cannot be unregistered).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import wrapt

from auditel.instrumentation import _base, genai


class LazyGenAIInstrumentor(genai.GenAIInstrumentor):
    """A ``GenAIInstrumentor`` whose ``_apply`` runs when ``trigger`` is imported."""

    trigger = ""  # the module whose import applies the patches

    def __init__(self) -> None:
        super().__init__()
        if not hasattr(self, "_generation"):  # BaseInstrumentor is a per-class singleton
            self._generation = 0
            self._lazy_lock = threading.Lock()

    def _instrument(self, **kwargs: Any) -> None:
        generation = self._generation
        if self.trigger in sys.modules:
            self._apply_once(generation)
            return

        def hook(_module: Any) -> None:
            self._apply_once(generation)

        wrapt.register_post_import_hook(hook, self.trigger)

    def _apply_once(self, generation: int) -> None:
        with self._lazy_lock:
            if generation != self._generation:
                return  # uninstrumented (or re-instrumented) since this hook was registered
            self._generation += 1  # a second hook of the same generation does nothing
            try:
                self._apply(self._patches)
            except Exception as exc:  # noqa: BLE001 - never break the host's import
                _base.count_error(f"{type(self).__name__}_patch", exc)

    def _uninstrument(self, **kwargs: Any) -> None:
        with self._lazy_lock:
            self._generation += 1
            self._patches.unwrap_all()
