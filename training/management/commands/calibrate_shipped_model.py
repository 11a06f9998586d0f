"""Refit a shipped network's calibration temperature, without training it again.

    .venv/bin/python manage.py calibrate_shipped_model [NAME]    # default: the shipped default

The temperature is fitted as ``build_bundled_model`` now fits it (``calibration_figures``):
on the validation split of FairFace's training photos, the smallest whose 80% intervals hold
80% of the ages in expectation. The network's weights, and so every age it gives, stay as
they are. Rewrites the card ``predictor/vision/models/<name>.json``: its ``temperature``, its
interval figures (UTKFace test, FairFace validation split and FairFace's own validation
photos), the registry's calibration table, and a ``calibration`` entry with this command and
the temperature the build had fitted. A migration then carries the new temperature into databases
that registered the old one (see 0020_recalibrate_faceage_v4).
"""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from predictor.vision.bundled_models import DEFAULT_SHIPPED_MODEL
from training.management.commands.build_bundled_model import (
    MODELS_DIR,
    calibration_figures,
    held_out_splits,
)


class Command(BaseCommand):
    help = "Refit a shipped network's temperature on FairFace validation and rewrite its card."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", default=DEFAULT_SHIPPED_MODEL)
        parser.add_argument("--workers", type=int, default=settings.FACEAGE_PREPARE_WORKERS)

    def handle(self, *args, **options):
        from predictor.vision.age_network import AgeNetwork

        started = time.monotonic()
        name = options["name"]
        card_path = MODELS_DIR / f"{name}.json"
        if not card_path.is_file():
            raise CommandError(f"no shipped network {name!r} in {MODELS_DIR}")
        card = json.loads(card_path.read_text())
        # A version served with a second opinion names the network whose weights it serves.
        model_path = MODELS_DIR / f"{card.get('weights') or name}.keras"
        if not model_path.is_file():
            raise CommandError(f"no shipped network {name!r} in {MODELS_DIR}")
        network = AgeNetwork.from_keras_file(model_path)
        network.mirrored = bool(card.get("mirrored", True))
        if card.get("second_opinion"):
            from predictor.vision.second_opinion import from_settings

            network.second_opinion = from_settings(card["second_opinion"])
        utkface_test = card["figures"]["utkface_test"]["count"]
        val, test, utk = held_out_splits(network.chip_size, options["workers"], utkface_test)
        if len(utk["ages"]) != utkface_test:
            raise CommandError(
                f"{len(utk['ages'])} UTKFace test faces cut, the card has {utkface_test}"
            )
        temperature, calibration, figures = calibration_figures(network, val, test, utk)
        earlier = card.get("calibration") or {}
        card["calibration"] = {
            "command": f"manage.py calibrate_shipped_model {name}",
            # The temperature build_bundled_model fitted, kept when this runs again.
            "build_temperature": earlier.get("build_temperature", card["temperature"]),
            "seconds": round(time.monotonic() - started),
        }
        card["temperature"] = round(temperature, 4)
        card["figures"].update(figures)
        card["figures"]["registry"]["calibration"] = calibration
        card_path.write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")
        self.stdout.write(json.dumps({"temperature": card["temperature"], **figures}, indent=1))
        self.stdout.write(self.style.SUCCESS(f"wrote {card_path}"))
