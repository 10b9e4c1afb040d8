"""``issubclass`` answers remembered per class, for hot paths that test an object's type against an ABC.

``isinstance`` against an ABC (``Mapping``, the SDK's ``Span``) goes through ``__instancecheck__`` and the
ABC's own cache each time; a plain dict keyed by the exact class answers in one look-up. Bounded: past
``limit`` classes a new one is answered but not remembered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def subclass_memo(base: type, *, limit: int, known: Iterable[type] = ()) -> Callable[[type], bool]:
    """A function ``cls -> issubclass(cls, base)`` that remembers up to ``limit`` answers; ``known``:
    classes answered True from the start."""
    answers: dict[type, bool] = dict.fromkeys(known, True)

    def is_subclass(cls: type) -> bool:
        answer = answers.get(cls)
        if answer is None:
            answer = issubclass(cls, base)
            if len(answers) < limit:
                answers[cls] = answer
        return answer

    return is_subclass
