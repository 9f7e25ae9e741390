"""Every upstream internal geo-r relies on (`open_r1.compat.INTERNALS`) is still there, with the parameters geo-r
passes; a failure names the internal, the version installed and the version requirements.txt pins, so an upgrade
that moves one says which and where."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re

import pytest

from conftest import REPO
from open_r1 import compat
from open_r1.compat import INTERNALS, Internal


def pinned(package: str) -> str:
    """The version requirements.txt pins for `package`."""
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        match = re.match(rf"{re.escape(package)}==([^\s;#]+)", line.strip())
        if match:
            return match.group(1)
    return "unpinned"


def owner_object(internal: Internal):
    module_name, _, qualname = internal.owner.partition(":")
    obj = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
        obj = getattr(obj, part)
    return obj


def problem(internal: Internal) -> str | None:
    """What is wrong with `internal` in the installed packages (None: it is as geo-r uses it)."""
    try:
        owner = owner_object(internal)
    except (ImportError, AttributeError) as err:
        return f"{internal.owner} is gone ({err})"
    if internal.kind == "instance attribute":
        sources = []
        for cls in inspect.getmro(owner):
            try:
                sources.append(inspect.getsource(cls))
            except (OSError, TypeError):
                continue
        if not any(re.search(rf"self\.{re.escape(internal.name)}\s*(:[^=]+)?=", s) for s in sources):
            return f"{owner.__qualname__} no longer sets self.{internal.name}"
        return None
    if not hasattr(owner, internal.name):
        return "no longer exists"
    if internal.kind == "callable":
        value = getattr(owner, internal.name)
        if not callable(value):
            return f"is no longer callable ({type(value).__name__})"
        parameters = inspect.signature(value).parameters
        missing = [p for p in internal.params if p not in parameters]
        if missing:
            return f"no longer takes {missing}; its signature is {inspect.signature(value)}"
    return None


def report(internal: Internal, what: str) -> str:
    package = internal.package
    try:
        installed = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        installed = "not installed"
    return (f"{internal} ({internal.why}): {what}. Installed {package} {installed}; geo-r pins {package} "
            f"{pinned(package)} (checked: {compat.CHECKED.get(package)}). Update open_r1/compat.py for the new "
            "version.")


@pytest.mark.parametrize("internal", INTERNALS, ids=str)
def test_the_internal_is_still_there(internal):
    what = problem(internal)
    assert what is None, report(internal, what)


def test_a_moved_internal_is_reported_with_its_name_and_pinned_version():
    """The check can fail: a renamed method, a dropped parameter and a gone attribute are each caught."""
    gone = Internal("trl.trainer.grpo_trainer:GRPOTrainer", "_calculate_rewards_renamed", "callable", "a test")
    message = report(gone, problem(gone))
    assert "trl.trainer.grpo_trainer:GRPOTrainer._calculate_rewards_renamed" in message
    assert "no longer exists" in message and f"pins trl {pinned('trl')}" in message
    assert pinned("trl") == compat.CHECKED["trl"]
    narrower = Internal("trl.trainer.grpo_trainer:GRPOTrainer", "_log_metric", "callable", "a test", ("name", "unit"))
    assert "no longer takes ['unit']" in problem(narrower)
    unset = Internal("trl.trainer.utils:RepeatSampler", "set_epoch_generator", "instance attribute", "a test")
    assert "no longer sets self.set_epoch_generator" in problem(unset)
    assert "is gone" in problem(Internal("trl.no_such_module", "x", "attribute", "a test"))


def test_the_checked_versions_are_the_pinned_ones():
    """compat.CHECKED says which versions the list was checked against; it moves with requirements.txt."""
    assert {package: pinned(package) for package in compat.CHECKED} == compat.CHECKED


def test_every_internal_says_why_and_is_one_of_the_packages_checked():
    for internal in INTERNALS:
        assert internal.why and internal.package in compat.CHECKED, internal
        assert internal.kind in ("callable", "attribute", "instance attribute"), internal
    assert len({str(i) for i in INTERNALS}) == len(INTERNALS)


def test_the_repeat_sampler_is_reseeded_through_a_prepared_loader():
    """`reseed_repeat_sampler` finds TRL's sampler under accelerate's prepared loader, as training hands it over."""
    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from trl.trainer.utils import RepeatSampler

    sampler = RepeatSampler(range(8), 2, batch_size=2, seed=5)
    loader = Accelerator(cpu=True).prepare(DataLoader(list(range(8)), batch_size=4, sampler=sampler))
    assert compat.reseed_repeat_sampler(loader, 3)
    assert torch.equal(sampler.generator.get_state(), torch.Generator().manual_seed(8).get_state())
    assert not compat.reseed_repeat_sampler(DataLoader(list(range(4))), 1)


def test_rewards_are_observed_once_per_marker():
    class Trainer:
        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            return [len(completions)]

    trainer, seen = Trainer(), []
    compat.observe_rewards(trainer, seen.append, "_marker")
    compat.observe_rewards(trainer, seen.append, "_marker")
    assert trainer._calculate_rewards(None, None, ["a", "b"], None) == [2]
    assert seen == [[2]]
