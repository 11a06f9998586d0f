"""manage.py build_second_opinion refuses options it cannot build with, before it reads a
photo or trains anything (the build itself runs in docs/benchmarks.md, not in tests)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--layers", "descriptor,pixels"], r"^--layers: comma-separated names among descriptor"),
        (["--layers", ""], r"^--layers: comma-separated names among"),
        (["--name", "faceage-v6", "--replaces", "faceage-v6"], r"^--replaces names the version"),
        (["--hidden", "0"], r"^--hidden and --epochs must be at least 1"),
        (["--network", "faceage-v0"], r"^--network: no shipped network 'faceage-v0'"),
        (["--seeds", "0,x"], r"^--seeds: comma-separated whole numbers 0 or more"),
        (["--seeds", "-1"], r"^--seeds: comma-separated whole numbers 0 or more"),
        (["--seeds", ""], r"^--seeds: comma-separated whole numbers 0 or more"),
        (["--seeds", str(2**32)], r"^--seeds: comma-separated whole numbers 0 or more"),
        (["--replaces", "faceage-v0"], r"^--replaces: no shipped version 'faceage-v0'"),
        # faceage-v6's and faceage-v7's cards record --seed 0: not an abbreviation of --seeds.
        (["--seed", "0"], r"unrecognized arguments: --seed 0"),
    ],
)
def test_options_it_cannot_build_with_are_refused(options, message, tmp_path):
    with pytest.raises(CommandError, match=message):
        call_command("build_second_opinion", *options, "--out", str(tmp_path))
    assert not any(tmp_path.iterdir())  # nothing written


def test_heads_another_shipped_version_serves_are_not_overwritten(tmp_path, monkeypatch):
    """Into the repository's models folder, a build may not write the heads' file of another
    shipped version (faceage-v7 serves descriptor-age-v2); rebuilding that version itself
    may."""
    import training.management.commands.build_second_opinion as build

    monkeypatch.setattr(build, "MODELS_DIR", tmp_path)  # the folder the build writes into
    with pytest.raises(CommandError, match=r"^--head: faceage-v7 serves the heads"):
        call_command("build_second_opinion", "--head", "descriptor-age-v2", "--out", str(tmp_path))
    # faceage-v7 rebuilt under its own name passes that check (and stops at the next one:
    # no network in the stand-in folder).
    with pytest.raises(CommandError, match=r"^--network: no shipped network"):
        call_command(
            "build_second_opinion",
            *("--name", "faceage-v7", "--head", "descriptor-age-v2", "--replaces", "faceage-v6"),
            *("--out", str(tmp_path)),
        )
    assert not any(tmp_path.iterdir())


def test_heads_are_trained_for_every_layer_and_seed_as_one_at_a_time():
    """train_heads (the build's and bench/descriptor_layers.py's loop) gives one head per layer
    and seed, each the head train_head gives alone with that seed, and reports each one."""
    import numpy as np

    from predictor.vision.face_descriptor import LAYERS
    from training.management.commands.build_second_opinion import train_head, train_heads

    rng = np.random.default_rng(0)
    ages = rng.integers(0, 70, 96)
    low = (ages // 10) * 10
    labels = {"age_low": np.tile(low, 2), "age_high": np.tile(low + 9, 2)}  # two looks
    widths = {name: LAYERS[name] for name in ("descriptor", "final")}
    seen = [
        {name: rng.normal(size=(96, width)).astype(np.float32) for name, width in widths.items()}
        for _look in range(2)
    ]
    for look in seen:
        look["descriptor"][:, 0] += ages / 10  # something to learn
    reported = []
    members, losses = train_heads(
        seen, labels, ("descriptor", "final"), (0, 3), hidden=8, epochs=2,
        trained=lambda seed, name: reported.append((seed, name)),
    )  # fmt: skip
    assert sorted(members) == [0, 3] and all(
        sorted(m) == ["descriptor", "final"] for m in members.values()
    )
    assert reported == [(0, "descriptor"), (3, "descriptor"), (0, "final"), (3, "final")]
    assert sorted(losses) == [
        "descriptor, seed 0",
        "descriptor, seed 3",
        "final, seed 0",
        "final, seed 3",
    ]
    assert all(len(history) == 2 for history in losses.values())
    both_looks = np.concatenate([look["final"] for look in seen])
    alone, _ = train_head(both_looks, labels, 8, 2, 3, reads="final")
    features = seen[0]["final"][:16]
    assert np.allclose(members[3]["final"].predict(features), alone.predict(features), atol=1e-5)
    other_seed = members[0]["final"].predict(features)
    assert not np.allclose(other_seed, alone.predict(features), atol=1e-5)
    assert members[3]["final"].reads == "final"
