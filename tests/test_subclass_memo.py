"""``subclass_memo``: the span-event bridge's SDK-span test and ``field_of``'s mapping test."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType

from auditel.subclass_memo import subclass_memo


def test_answers_are_issubclass_and_stay_right_past_the_limit() -> None:
    is_mapping = subclass_memo(Mapping, limit=2, known=(dict,))
    classes = [dict, OrderedDict, MappingProxyType, list, str, int]
    for _ in range(2):  # the second round reads remembered answers (and recomputes past the limit)
        assert [is_mapping(c) for c in classes] == [issubclass(c, Mapping) for c in classes]


def test_known_classes_are_answered_true_without_asking() -> None:
    class NotAMapping:
        pass

    # a seeded class is trusted as given: the seed is for classes whose answer is known to be True
    assert subclass_memo(Mapping, limit=8, known=(NotAMapping,))(NotAMapping) is True
    assert subclass_memo(Mapping, limit=8)(NotAMapping) is False
