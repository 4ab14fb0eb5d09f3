import json, sys, copy, torch, os
import torch.nn.functional as F
from tutorial_lib.recipes import get_recipe, with_overrides
from tutorial_lib.data import load_dataset
from tutorial_lib.cli import build_run
from tutorial_lib.multiscale import Resized, resize_batch, recalibrate_at
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
name = sys.argv[1]; over = json.loads(sys.argv[2])
recipe = with_overrides(get_recipe("cpu-baseline"), over)
model, _ = build_run(recipe, 10)
model.load_state_dict(torch.load(f"/tmp/exp/{name}.pt")); model.eval()
sizes = [16, 24, 32, 40, 48, 64]
train = load_dataset("multiscale-digits", "train", image_size=64)
out = {}
for split in ("test", "test-small", "test-large"):
    d = load_dataset("multiscale-digits", split, image_size=64)
    x = d.images.float().div(255); y = d.labels
    P = {}
    with torch.no_grad():
        for s in sizes:
            P[s] = torch.cat([F.softmax(model(resize_batch(x[i:i+500], s).contiguous(memory_format=torch.channels_last)), 1) for i in range(0, len(x), 500)])
    r = {}
    for combo in [(24, 48), (32, 64), (24, 32, 48), (24, 32, 48, 64), (16, 32, 64), (24, 40, 64), (16, 24, 32, 40, 48, 64)]:
        st = torch.stack([P[s] for s in combo])
        k = "+".join(map(str, combo))
        r["avg" + k] = round((st.mean(0).argmax(1) == y).float().mean().item(), 4)
        r["geo" + k] = round((st.clamp_min(1e-12).log().mean(0).argmax(1) == y).float().mean().item(), 4)
        conf, idx = st.max(2)  # per size: max prob, argmax
        best = conf.argmax(0)
        pred = idx.gather(0, best[None])[0]
        r["max" + k] = round((pred == y).float().mean().item(), 4)
    out[split] = r
print(json.dumps(out, indent=0))
# recalibration at each size
rec = {}
for s in (16, 24, 48, 64):
    m = copy.deepcopy(model)
    recalibrate_at(m, train, s, num_batches=20, batch_size=128)
    m.eval()
    rec[s] = {}
    for split in ("test", "test-small", "test-large"):
        d = load_dataset("multiscale-digits", split, image_size=64)
        from tutorial_lib.train import evaluate
        rec[s][split] = round(evaluate(Resized(m, s), d)["accuracy"], 4)
print("recal", json.dumps(rec))
