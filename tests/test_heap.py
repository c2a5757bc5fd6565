"""edge.runtime.heap: long-lived objects are frozen, and what a reload replaced is still freed."""

from __future__ import annotations

import gc
import weakref

from edge.runtime import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector can free it


def test_settle_freezes_survivors_and_a_later_settle_frees_what_was_dropped():
    try:
        old_rules = Node()
        gone = weakref.ref(old_rules)
        heap.settle()
        assert gc.get_freeze_count() > 0

        del old_rules  # a reload replaced them
        gc.collect()
        assert gone() is not None, "frozen objects are exempt from collections"

        heap.settle()  # after the reload
        assert gone() is None, "the replaced rules were freed"
    finally:
        gc.unfreeze()


def test_objects_made_after_settle_are_collected_as_usual():
    try:
        heap.settle()
        request_garbage = Node()
        gone = weakref.ref(request_garbage)
        del request_garbage
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()


def test_the_youngest_generation_is_collected_less_often():
    before = gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_threshold()[0] == heap.YOUNGEST_GENERATION_THRESHOLD
        assert gc.get_threshold()[1:] == before[1:]
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
