"""The learning-from-users loop on a real stack, end to end, with real faces.

    .venv/bin/python bench/feedback.py [--people 20] [--faces 200] [--after 60] [--epochs 2]

1. ``--people`` accounts upload ``--faces`` UTKFace photos through the API (token auth), wait
   for each result, and give face 0's real age (the file name's) with consent to training.
2. ``manage.py import_dataset people --kind feedback --benchmark`` snapshots the consented
   faces; ``manage.py train --dataset people`` trains a candidate from the active model on them
   (its own test split is the accounts the split put aside).
3. The gate's verdict on every benchmark (here: the feedback dataset's test split) is printed.
4. The candidate is promoted (whatever the gate said: this is a demonstration of the loop,
   and a staff member would need a written reason), ``--after`` more photos are uploaded and
   labelled, and the live-accuracy table (``GET /api/v1/models/<name>/live-accuracy/``, staff)
   is printed for both versions: the labels given while each one served.

UTKFace is for research only: nothing here ships. The figures show the loop works; with a
few hundred faces they say little about which model is better.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402

MAKE_PEOPLE = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
User = get_user_model()
tokens = []
for n in range({people}):
    user = User.objects.create_user(f"person{{n}}")
    tokens.append(Token.objects.create(user=user).key)
staff = User.objects.create_superuser("staff", password="a-long-staff-password-1")
print(json.dumps({{"people": tokens, "staff": Token.objects.create(user=staff).key}}))
"""

PROMOTE = """
from predictor.models import ModelVersion
ModelVersion.objects.get(name={name!r}).activate()
"""


def age_of(path: Path) -> int:
    return int(path.name.split("_")[0])


def upload_and_label(session, base_url: str, path: Path) -> str | None:
    """Upload one photo, wait for it, label face 0 with the real age; the model's name."""
    response = session.post(
        f"{base_url}/api/v1/predictions/",
        files={"image": (path.name, path.read_bytes())},
        timeout=60,
    )
    response.raise_for_status()
    url = response.headers["Location"]
    while True:
        body = session.get(url, params={"wait": 20}, timeout=60).json()
        if body["status"] in ("succeeded", "failed"):
            break
    if body["status"] != "succeeded" or not body["faces"]:
        return None
    labelled = session.post(
        f"{url}faces/0/label/", json={"age": age_of(path), "consent": True}, timeout=60
    )
    labelled.raise_for_status()
    return body["model_version"]


def run(stack, command: list[str]) -> str:
    import subprocess

    done = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=REPO_ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--faces", type=int, default=200)
    parser.add_argument("--after", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import requests

    from tests.support.stack import local_stack

    root = Path(os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))
    files = random.Random(args.seed).sample(
        sorted((root / "utkface").glob("*.jpg")), args.faces + args.after
    )
    started = time.monotonic()
    with local_stack(extra_env={"FACEAGE_UPLOAD_RATE": ""}) as stack:
        made = run(stack, ["shell", "-c", MAKE_PEOPLE.format(people=args.people)])
        accounts = json.loads(made.strip().splitlines()[-1])  # after the shell's own notes
        sessions = []
        for token in accounts["people"]:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
            sessions.append(session)
        served = [
            upload_and_label(sessions[n % len(sessions)], stack.base_url, path)
            for n, path in enumerate(files[: args.faces])
        ]
        labelled = sum(name is not None for name in served)
        print(f"1. {labelled} of {args.faces} faces labelled with consent by {args.people} "
              f"accounts through the API ({time.monotonic() - started:.0f} s)")  # fmt: skip

        imported = run(stack, ["import_dataset", "people", "--kind", "feedback", "--benchmark"])
        print("2. " + " ".join(imported.split()))
        trained = run(
            stack,
            ["train", "--dataset", "people", "--epochs", str(args.epochs), "--batch-size", "16"],
        )
        name = re.search(r"candidate model version: (\S+)", trained)
        if name is None:
            raise SystemExit(f"no model version in the training output:\n{trained}")
        candidate = name.group(1)
        print(
            "   " + " ".join(line for line in trained.splitlines() if line.startswith("test MAE"))
        )
        staff = requests.Session()
        staff.headers["Authorization"] = f"Token {accounts['staff']}"
        detail = staff.get(f"{stack.base_url}/api/v1/models/{candidate}/", timeout=60).json()
        rows = []
        for benchmark, result in detail["metrics"].get("benchmarks", {}).items():
            rows.append([
                benchmark, result["candidate"].get("count"),
                f"{result['candidate'].get('mae', 0):.2f}", f"{result['active'].get('mae', 0):.2f}",
                ", ".join(f"{r['metric']} {r['active']:.2f} -> {r['candidate']:.2f}"
                          for r in result.get("regressions", [])) or "none",
            ])  # fmt: skip
        print(f"3. the gate on the suite, {candidate} against the active model:")
        print_table(["benchmark", "faces", "candidate MAE", "active MAE", "regressions"], rows)

        active = served[0]
        run(stack, ["shell", "-c", PROMOTE.format(name=candidate)])
        after = [
            upload_and_label(sessions[n % len(sessions)], stack.base_url, path)
            for n, path in enumerate(files[args.faces :])
        ]
        print(f"4. {candidate} promoted; {sum(a is not None for a in after)} more faces labelled")
        rows = []
        for version in (active, candidate):
            live = staff.get(
                f"{stack.base_url}/api/v1/models/{version}/live-accuracy/", timeout=60
            ).json()
            overall = live["overall"]
            rows.append([
                version, overall["count"], overall.get("mae", "-"), overall.get("cs5", "-"),
                overall.get("bias", "-"), live["test_mae"] if live["test_mae"] is not None else "-",
            ])  # fmt: skip
        print_table(["model version", "labels", "live MAE", "CS@5", "bias", "test MAE"], rows)
    print(f"{time.monotonic() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
