"""How the span bridge reaches the application's spans without owning its TracerProvider.

* ``attach(runtime)`` (called by the Runtime that ``configure()`` builds): binds the one
  ``AuditSpanProcessor`` of this process to the runtime and adds it to the global TracerProvider
  if the application has set one (an SDK ``TracerProvider``, or anything with
  ``add_span_processor``). If none is set yet, a hook on ``opentelemetry.trace.set_tracer_provider``
  adds it when the application sets one later; the provider is never replaced.
* ``attach_to(provider)``: for a provider the application never makes global (e.g. passed to a
  framework as ``tracer_provider=``).
* ``AdoptingTracerProvider``: what zero-code start makes global instead of the SDK's provider. It
  forwards to the provider the OTel configurator built from ``OTEL_TRACES_EXPORTER`` until the
  application sets its own provider in code; from then on every tracer, including those handed out
  earlier, starts its spans on the application's provider (whose exporters receive them) and auditel's
  records carry those spans' trace context. Attribute access (``add_span_processor``,
  ``force_flush``...) goes to the current provider.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from opentelemetry import trace

from auditel.config.spans import SpanBridgeSettings
from auditel.spans.processor import AuditSpanProcessor

_lock = threading.RLock()
_processor: AuditSpanProcessor | None = None
_attached: weakref.WeakSet[Any] = weakref.WeakSet()
_hooked = False
_log = logging.getLogger("opentelemetry.trace")


def processor() -> AuditSpanProcessor:
    global _processor
    with _lock:
        if _processor is None:
            _processor = AuditSpanProcessor()
        return _processor


def attach(runtime: Any) -> None:
    """Called by the Runtime: bind the bridge to ``runtime`` and attach it to the app's provider."""
    settings = SpanBridgeSettings.from_env()  # a bad AUDITEL_SPAN_BRIDGE fails configure() by name
    runtime.span_bridge = None
    install_hook()
    if not settings.enabled:
        return
    proc = processor()
    proc.bind(runtime, settings)
    runtime.span_bridge = proc
    runtime.add_shutdown_hook(lambda _deadline: proc.unbind(runtime))
    attach_to(trace.get_tracer_provider())


def claim(span: Any) -> tuple[str | None, str | None, str | None] | None:
    """For auditel's own ``ToolRun``: (correlation id, call id, intent record id) of the framework
    tool action its span continues (dedup rule 4, docs/frameworks.md), or None. Never raises."""
    proc = _processor
    if proc is None or span is None:
        return None
    try:
        action = proc.claim(span.get_span_context().span_id)
    except Exception:  # noqa: BLE001 - a claim that fails leaves both pairs, never an error
        return None
    if action is None:
        return None
    return action.correlation_id, action.call_id, action.intent_id


def attach_to(provider: Any) -> bool:
    """Add the bridge to ``provider`` once; False when it cannot take span processors."""
    try:
        if isinstance(provider, AdoptingTracerProvider):
            provider = provider.delegate
        if provider is None or isinstance(provider, trace.ProxyTracerProvider):
            return False
        add = getattr(provider, "add_span_processor", None)
        if add is None:
            return False
        with _lock:
            if provider in _attached:
                return True
            add(processor())
            _attached.add(provider)
        return True
    except Exception:  # noqa: BLE001 - an odd provider must not stop the app
        return False


# --- set_tracer_provider hook ------------------------------------------------------------------
def install_hook() -> None:
    """Wrap ``opentelemetry.trace._set_tracer_provider`` (what ``set_tracer_provider`` calls) once."""
    global _hooked
    with _lock:
        if _hooked:
            return
        original = trace._set_tracer_provider

        def _set_tracer_provider(tracer_provider: Any, log: bool) -> None:
            current = getattr(trace, "_TRACER_PROVIDER", None)
            if isinstance(current, AdoptingTracerProvider) and tracer_provider is not current:
                if current.offer(tracer_provider):  # adopted (else refused, as the API refuses it)
                    attach_to(tracer_provider)
                return
            original(tracer_provider, log)
            if getattr(trace, "_TRACER_PROVIDER", None) is tracer_provider:
                attach_to(tracer_provider)

        trace._set_tracer_provider = _set_tracer_provider
        _hooked = True


# --- zero-code: a global provider that the application's own provider can replace ------------------
class AdoptingTracerProvider(trace.TracerProvider):
    """Global provider of zero-code start: adopts the configurator's provider, then the app's.

    ``expect_own()`` before running the OTel configurator: the provider it sets is adopted as
    auditel's. The first provider the application sets afterwards replaces it (no "Overriding of
    current TracerProvider is not allowed"); any later one is refused as the API would refuse it.
    """

    def __init__(self) -> None:
        self.delegate: Any = None
        self._own_pending = False
        self._app_set = False

    def expect_own(self, on: bool = True) -> None:
        self._own_pending = on

    def adopt_own(self, provider: Any) -> None:
        self.delegate = provider
        self._own_pending = False

    def offer(self, provider: Any) -> bool:
        """A provider passed to set_tracer_provider: True when adopted, False when refused."""
        if self._own_pending:
            self.adopt_own(provider)
            return True
        if self._app_set:
            _log.warning("Overriding of current TracerProvider is not allowed")
            return False
        self.delegate = provider
        self._app_set = True
        return True

    @property
    def app_provider_set(self) -> bool:
        return self._app_set

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        return _AdoptingTracer(self, (instrumenting_module_name, instrumenting_library_version, schema_url, attributes))

    def __getattr__(self, name: str) -> Any:
        delegate = self.__dict__.get("delegate")
        if delegate is None:
            raise AttributeError(name)
        return getattr(delegate, name)


_NOOP = trace.NoOpTracer()


class _AdoptingTracer(trace.Tracer):
    """Resolves the current delegate on every span start (one identity check when unchanged)."""

    __slots__ = ("_args", "_for", "_owner", "_tracer")

    def __init__(self, owner: AdoptingTracerProvider, args: tuple[Any, ...]) -> None:
        self._owner = owner
        self._args = args
        self._for: Any = None
        self._tracer: trace.Tracer = _NOOP

    def _real(self) -> trace.Tracer:
        delegate = self._owner.delegate
        if delegate is not self._for:
            name, version, schema_url, attributes = self._args
            try:
                self._tracer = delegate.get_tracer(name, version, schema_url, attributes) if delegate else _NOOP
            except TypeError:  # providers with the older get_tracer signature
                self._tracer = delegate.get_tracer(name, version, schema_url)
            self._for = delegate
        return self._tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._real().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._real().start_as_current_span(*args, **kwargs)
