"""The prefilter: picks, cheaply, the rules a string could possibly match before any rule regex runs."""

from __future__ import annotations

import re
import sys

from auditel.redaction.rules import Rule

# Strings shorter than this cannot hold anything a rule matches (shortest: "pwd=ab").
MIN_SCAN_LEN = 6


class Prefilter:
    """Picks the rules a string could possibly match, cheaply, before any rule regex runs.

    1. Anchors: one regex of every rule's anchors, grouped by first character (``_``, ``-``,
       ``.``, ``A``...). Every branch starts with a literal, so the C engine only stops at
       those characters. A hit enables every rule anchored on that character.
    2. Words: one regex of every rule's words over the lower-cased text.
    3. ``trigger_re`` searches (cards, opt-in detectors); rules with no trigger always run.
    Then rules whose ``gate`` characters are all absent, and rules longer than the text
    (minimum match length from the regex parser), are dropped.
    """

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        # Each rule's own regex (where its secret part is) compiles on the rule's first match:
        # most rules never match in a process, and compiling all of them cost ~15 ms at start-up.
        self._rules = rules
        self._rule_res: list[re.Pattern[str] | None] = [None] * len(rules)
        widths = [_min_width(r.pattern) for r in rules]
        self.min_len = max(MIN_SCAN_LEN, min(widths)) if rules else 1 << 62
        anchors: dict[str, dict[str, int]] = {}  # first character -> {rest: mask}
        word_bits: dict[str, int] = {}
        gates: dict[str, int] = {}
        res: dict[str, int] = {}
        res_gate: dict[str, str] = {}
        self.always = 0
        for i, rule in enumerate(rules):
            bit = 1 << i
            for anchor in rule.anchors:
                head = anchor[:2] if anchor.startswith("\\") else anchor[:1]
                rests = anchors.setdefault(head, {})
                rests[anchor[len(head) :]] = rests.get(anchor[len(head) :], 0) | bit
            for word in rule.words:
                word_bits[word] = word_bits.get(word, 0) | bit
            if rule.trigger_re:
                res[rule.trigger_re] = res.get(rule.trigger_re, 0) | bit
                res_gate[rule.trigger_re] = rule.gate if res_gate.get(rule.trigger_re, rule.gate) == rule.gate else ""
            if not (rule.anchors or rule.words or rule.trigger_re):
                self.always |= bit
            if rule.gate:
                gates[rule.gate] = gates.get(rule.gate, 0) | bit
        # Anchors: a hit enables every rule anchored on that first character (two anchors can
        # hold at one position, and a regex reports only one of them).
        branches = []
        self.anchor_masks: dict[str, int] = {}
        for n, (head, rests) in enumerate(anchors.items()):
            body = "" if "" in rests else "(?:" + "|".join(rests) + ")"
            branches.append(f"{head}{body}(?P<a{n}>)")
            self.anchor_masks[f"a{n}"] = 0
            for mask in rests.values():
                self.anchor_masks[f"a{n}"] |= mask
        self.anchor_finditer = re.compile("|".join(branches)).finditer if branches else None
        # Words (in the lower-cased text), each anchored on its rarest character so the C
        # engine stops at few positions: "token" -> k(?<=to)(?=en).
        placed = {w: _word_anchor(w) for w in word_bits}
        word_masks = dict(word_bits)
        for w1, (c1, pre1, post1) in placed.items():
            for w2, (c2, pre2, post2) in placed.items():
                # Two words that can hold at the same anchor position: a hit for one reports
                # only that one, so it must enable the other's rules too.
                if (
                    w1 != w2
                    and c1 == c2
                    and (pre1.endswith(pre2) or pre2.endswith(pre1))
                    and (post1.startswith(post2) or post2.startswith(post1))
                ):
                    word_masks[w1] |= word_bits[w2]
        by_char: dict[str, list[str]] = {}
        self.word_masks: dict[str, int] = {}
        for n, (word, (char, pre, post)) in enumerate(placed.items()):
            look = (f"(?<={re.escape(pre + char)})" if pre else "") + (f"(?={re.escape(post)})" if post else "")
            by_char.setdefault(re.escape(char), []).append(f"{look}(?P<w{n}>)")
            self.word_masks[f"w{n}"] = word_masks[word]
        branches = [
            head + (alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")") for head, alts in by_char.items()
        ]
        self.word_finditer = re.compile("|".join(branches)).finditer if branches else None
        self.searches = tuple((re.compile(p).search, m, res_gate[p]) for p, m in res.items())
        self.gates = tuple(gates.items())
        # allowed[n]: the rules whose minimum match length is <= n (n beyond the table: all)
        longest = max(widths, default=0)
        self.allowed = [sum(1 << i for i, w in enumerate(widths) if w <= n) for n in range(longest + 1)]
        self.longest = longest

    def rule_re(self, i: int) -> re.Pattern[str]:
        """Rule ``i``'s regex with the secret part as group ``s``."""
        rx = self._rule_res[i]
        if rx is None:
            rule = self._rules[i]
            rx = self._rule_res[i] = re.compile(f"{rule.keep}(?P<s>{rule.secret})")
        return rx

    def candidates(self, text: str) -> int:
        mask = self.always
        if self.anchor_finditer is not None:
            anchor_masks = self.anchor_masks
            for m in self.anchor_finditer(text):
                mask |= anchor_masks[m.lastgroup]  # type: ignore[index]
        if self.word_finditer is not None:
            word_masks = self.word_masks
            for m in self.word_finditer(text.lower()):
                mask |= word_masks[m.lastgroup]  # type: ignore[index]
        for search, bit, gate in self.searches:
            if not mask & bit and (not gate or any(ch in text for ch in gate)) and search(text):
                mask |= bit
        if not mask:
            return 0
        for chars, bits in self.gates:
            if mask & bits:
                for ch in chars:
                    if ch in text:
                        break
                else:
                    mask &= ~bits
        n = len(text)
        if mask and n < self.longest:
            mask &= self.allowed[n]
        return mask


# Letters from rarest to most common in English text, then punctuation seen in words.
_RARITY = "zqxj~@=/:-_kvbpygfwmucldrhsnioate. "


def _word_anchor(word: str) -> tuple[str, str, str]:
    """(anchor character, text before it, text after it) with the rarest anchor character."""
    best = min(range(len(word)), key=lambda i: (_RARITY.find(word[i]) % 64 if word[i] in _RARITY else 63, i))
    return word[best], word[:best], word[best + 1 :]


def _min_width(pattern: str) -> int:
    """The shortest text a pattern can match (from the regex parser)."""
    if sys.version_info >= (3, 11):
        from re import _parser as sre_parse  # the regex parser's home since 3.11
    else:  # pragma: no cover - Python 3.10
        import sre_parse
    return int(sre_parse.parse(pattern).getwidth()[0])
