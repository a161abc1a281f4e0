"""The judgements a chat takes on its last answer, for `tanren chat`'s slash commands and the
workbench's keys alike: good, bad, edit (one answer) and prefer left or right (compare mode)."""

from __future__ import annotations

from collections.abc import Callable

from engine.chat.collect import Counts, Dataset, Turn, edit, prefer, rate
from engine.errors import TanrenError
from engine.i18n import Gettext
from engine.phrases import Phrase, phrase

SIDES = ("left", "right")
PREFERRED = {"left": phrase("preferred left"), "right": phrase("preferred right")}


class Judge:
    """The dataset a chat writes to and the answer (one per side) it may judge, once."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.turns: tuple[Turn, ...] = ()
        self.judged: Phrase | None = None  # what was done with the answer, said when it is judged again

    def answered(self, *turns: Turn) -> None:
        """A new answer (one per side in compare mode) is the one judged next."""
        self.turns, self.judged = turns, None

    def forget(self) -> None:
        self.answered()

    def use(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def status(self, _: Gettext) -> str:
        return _("dataset {name}: {counts}", name=self.dataset.name, counts=self.dataset.counts().describe(_))

    def rate(self, good: bool) -> Counts:
        judgement = phrase("good") if good else phrase("bad")
        return self._once(judgement, lambda: rate(self.dataset, self._single(), good))

    def edit(self, text: str) -> Counts:
        return self._once(phrase("edited"), lambda: edit(self.dataset, self._single(), text))

    def prefer(self, side: str) -> Counts:
        if side not in SIDES:
            raise TanrenError(phrase("prefer {side!r}? say left or right", side=side),
                              hint=phrase("left: the first target, right: the other"))
        chosen, rejected = self._sides() if side == "left" else reversed(self._sides())
        return self._once(PREFERRED[side], lambda: prefer(self.dataset, chosen, rejected))

    def to_edit(self) -> Turn:
        """The answer an edit replaces; raises as the edit would when there is none to edit."""
        self._unjudged()
        return self._single()

    def _unjudged(self) -> None:
        if self.judged:
            raise TanrenError(phrase("this answer is already judged ({judgement})", judgement=self.judged),
                              hint=phrase("ask something new to judge again"))

    def _once(self, judgement: Phrase, write: Callable[[], Counts]) -> Counts:
        self._unjudged()
        counts = write()
        self.judged = judgement
        return counts

    def _single(self) -> Turn:
        if not self.turns:
            raise TanrenError(phrase("there is no answer to judge yet"), hint=phrase("send a message first"))
        if len(self.turns) > 1:
            raise TanrenError(phrase("two targets answered; pick the better one"), hint=phrase("prefer left or right"))
        return self.turns[0]

    def _sides(self) -> tuple[Turn, Turn]:
        if len(self.turns) != 2:
            raise TanrenError(phrase("picking a side needs two answers side by side"),
                              hint=phrase("compare with a second target first") if self.turns
                              else phrase("send a message first"))
        return self.turns[0], self.turns[1]
