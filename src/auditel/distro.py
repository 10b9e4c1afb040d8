"""Zero-code start: an OTel distro and configurator for ``opentelemetry-instrument``.

``opentelemetry-instrument python agent.py`` loads one distro and one configurator (the first
found, or the ones named by ``OTEL_PYTHON_DISTRO`` / ``OTEL_PYTHON_CONFIGURATOR``), then every
``opentelemetry_instrumentor`` entry point, ours included (``auditel_openai``, ...).

* ``AuditelConfigurator``: when ``AUDITEL_ENABLED`` is true, configures auditel from the
  environment and, only if the application has no TracerProvider yet, sets up the stock OTel SDK
  components exactly as the SDK's own configurator would (``OTEL_TRACES_EXPORTER``, ...), behind an
  adopting global provider that a provider the app sets later in code replaces (``configure_tracing``).
  When auditel is not enabled it does nothing at all.
* ``AuditelDistro``: like the default distro (no exporter defaults are forced on the app); when
  auditel is not enabled it skips auditel's own instrumentors, so installing auditel never adds
  spans to an app that did not ask for it.

Whichever distro or configurator ``opentelemetry-instrument`` picks, auditel's instrumentors
configure auditel on first use when ``AUDITEL_ENABLED=true`` (``auditel.runtime.current()``).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

from auditel.zero_code import auditel_enabled, configure_tracing, start_auditel


class AuditelConfigurator(_OTelSDKConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        if not auditel_enabled():
            return
        start_auditel()
        configure_tracing(lambda: super(AuditelConfigurator, self)._configure(**kwargs))


class AuditelDistro(BaseDistro):
    def _configure(self, **kwargs: Any) -> None:
        pass

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if entry_point.name.startswith("auditel_") and not auditel_enabled():
            return
        super().load_instrumentor(entry_point, **kwargs)
