"""The zero-code start: what ``auditel run`` (and auditel's OTel distro) do at interpreter start.

Configure auditel from the environment (a bad setting is reported on stderr, never raised), set up
OTel tracing only if nothing set it (behind a provider that the application's own replaces), and
arm auditel's instrumentations: each is imported and switched on only when (if) the application
imports its framework (``auditel.instrumentation.arm``), so a process pays start-up time only for
what it uses. This module imports neither ``opentelemetry-instrumentation`` nor a framework.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from opentelemetry import trace

from auditel.config.instrumentation import ConfigError, zero_code_enabled

_reported: list[str] = []  # a bad AUDITEL_ENABLED is reported once per process


def auditel_enabled(env: Mapping[str, str] | None = None) -> bool:
    """``AUDITEL_ENABLED`` is true. A value that is not a boolean is reported on stderr, loudly (a
    program that asked for auditing must never run unaudited silently), and auditing stays off:
    the zero-code start cannot know what was meant."""
    try:
        return zero_code_enabled(env)
    except ConfigError as exc:
        if not _reported:
            _reported.append(str(exc))
            sys.stderr.write(
                f"auditel: {exc}\nauditel: this program runs WITHOUT auditing until AUDITEL_ENABLED is fixed\n"
            )
        return False


def tracer_provider_is_set() -> bool:
    """True when a real TracerProvider is the global one (the API's proxy means none was set)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def start_auditel() -> bool:
    """Configure auditel from the environment; a bad setting is reported on stderr, never raised."""
    from auditel import runtime
    from auditel.config.settings import ConfigError

    try:
        return runtime.configure() is not None
    except ConfigError as exc:
        sys.stderr.write(
            f"auditel: not enabled: {exc}\nauditel: this program runs WITHOUT auditing until the setting is fixed\n"
        )
        return False


def configure_tracing(configure_sdk: Callable[[], None]) -> None:
    """Set up tracing for zero-code start, leaving room for the application's own provider.

    The global provider becomes an ``AdoptingTracerProvider`` that forwards to the provider the
    OTel configurator builds (``OTEL_TRACES_EXPORTER``...) until the application sets its own in
    code, which then takes over (its exporters receive every span, auditel's records carry its
    trace context). A configured exporter whose package is missing is reported loudly, naming the
    package, and spans still get a provider, so records keep their trace context.
    """
    from opentelemetry.sdk.trace import TracerProvider

    from auditel.config.spans import missing_trace_exporters
    from auditel.spans.attach import AdoptingTracerProvider, attach_to, install_hook

    install_hook()
    if tracer_provider_is_set():
        return  # never replace the application's providers
    adopter = AdoptingTracerProvider()
    trace.set_tracer_provider(adopter)
    if trace.get_tracer_provider() is not adopter:  # set by someone else in between
        return
    for problem in missing_trace_exporters():
        sys.stderr.write(f"auditel: ERROR: {problem}. Spans are not exported until it is installed.\n")
    adopter.expect_own()
    try:
        configure_sdk()
    except Exception as exc:  # noqa: BLE001 - the app must start; the problem is reported above/here
        sys.stderr.write(f"auditel: ERROR: OpenTelemetry tracing set-up failed: {type(exc).__name__}: {exc}\n")
    finally:
        adopter.expect_own(False)
    if adopter.delegate is None:
        from opentelemetry.sdk.resources import Resource

        adopter.adopt_own(TracerProvider(resource=Resource.create()))
        attach_to(adopter.delegate)


def _configure_sdk_if_requested() -> None:
    """The OTel SDK's own set-up, as ``opentelemetry-instrument`` runs it, when the environment asks
    for it (an exporter named); otherwise nothing, and ``configure_tracing`` gives spans a plain
    provider: no global Meter/Logger provider is set that would refuse the application's own."""
    from auditel.config.spans import sdk_setup_requested

    if sdk_setup_requested():
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator

        _OTelSDKConfigurator()._configure()


def bootstrap() -> list[str]:
    """What ``auditel run`` does in the child process: configure, set up tracing if unset, and arm
    the instrumentations (each switched on when its framework is imported)."""
    if not auditel_enabled() or not start_auditel():
        return []
    try:
        configure_tracing(_configure_sdk_if_requested)
    except Exception as exc:  # noqa: BLE001 - tracing set-up must not stop the app
        sys.stderr.write(f"auditel: tracing not configured: {type(exc).__name__}: {exc}\n")
    from auditel.instrumentation import arm

    return arm()


def coverage_line() -> str:
    """One line for ``auditel run``: which installed frameworks are audited, and which are not."""
    from auditel.instrumentation import coverage

    cov = coverage()
    audited = ", ".join(f"{label} ({name})" for label, name in cov["audited"].items()) or "no installed framework"
    line = f"auditel: auditing {audited}"
    if cov["not_audited"]:
        line += f"; installed but NOT audited: {', '.join(cov['not_audited'])}"
    return line
