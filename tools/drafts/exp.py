"""Experiment: train cpu-baseline + overrides, eval every test split at many sizes and TTA combos."""
import json, sys, time, itertools, os
import torch
from tutorial_lib.recipes import get_recipe, with_overrides
from tutorial_lib.data import load_dataset
from tutorial_lib.train import fit, evaluate
from tutorial_lib.cli import build_run
from tutorial_lib.multiscale import Resized, MultiScaleTTA
from tutorial_lib.env import seed_everything

name = sys.argv[1]
over = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
recipe_name = over.pop("recipe", "cpu-baseline")
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
recipe = with_overrides(get_recipe(recipe_name), over)
seed = seed_everything(recipe["seed"])
dopt = dict(recipe["data"], seed=seed)
train = load_dataset("multiscale-digits", "train", **dopt)
model, _ = build_run(recipe, 10)
t = time.perf_counter()
h = fit(model, train, **recipe["fit"], seed=seed, progress=False)
torch.save(model.state_dict(), f"/tmp/exp/{name}.pt")
res = {"name": name, "over": over, "recipe": recipe_name, "train_seconds": h.train_seconds, "res": {}}
sizes = [16, 24, 32, 40, 48, 64] if dopt.get("image_size", 32) == 64 else [16, 24, 32, 48]
combos = [(24, 32, 64), (32, 64), (24, 48), (24, 32, 48, 64), (16, 32, 64)]
for split in ("test", "test-small", "test-large"):
    d = load_dataset("multiscale-digits", split, **dopt)
    r = {}
    for s in sizes:
        r[str(s)] = round(evaluate(Resized(model, s), d)["accuracy"], 4)
    for c in combos:
        if all(x in sizes for x in c):
            r["+".join(map(str, c))] = round(evaluate(MultiScaleTTA(model, list(c)), d)["accuracy"], 4)
    res["res"][split] = r
print(json.dumps(res))
with open("/tmp/exp/results.jsonl", "a") as f:
    f.write(json.dumps(res) + "\n")
