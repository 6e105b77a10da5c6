import io, time
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from matching.catalog import Entry
from matching.services import item_add, variant_create
from matching.training import train_featurizer

SHAPES = ["disc", "square", "triangle", "bar"]

def draw(shape, rng, size=48):
    bg = tuple(int(c) for c in rng.integers(0, 256, 3))
    fg = tuple(int(c) for c in rng.integers(0, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    r = int(rng.integers(10, 18)); cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
    if shape == "disc": d.ellipse([cx-r, cy-r, cx+r, cy+r], fill=fg)
    elif shape == "square": d.rectangle([cx-r, cy-r, cx+r, cy+r], fill=fg)
    elif shape == "triangle": d.polygon([(cx, cy-r), (cx-r, cy+r), (cx+r, cy+r)], fill=fg)
    else: d.rectangle([cx-r, cy-r//4, cx+r, cy+r//4], fill=fg)
    return img

def catalog(n_per, seed):
    rng = np.random.default_rng(seed)
    for i in range(n_per):
        for s in SHAPES:
            buf = io.BytesIO(); draw(s, rng).save(buf, format="PNG")
            item_add(entry=Entry(path=Path(f"{s}{i}.png"), category=s), data=buf.getvalue())

@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n_per,epochs,size,bs,lr", [(30,8,32,16,3e-3)])
def test_measure(db, n_per, epochs, size, bs, lr, threads):
    torch.set_num_threads(threads)
    catalog(n_per, 0)
    t = time.perf_counter()
    def progress(e, E, loss, acc):
        print(f"  e{e} loss {loss:.3f} acc {acc:.2f} t {time.perf_counter()-t:.1f}", flush=True)
    print(f"\nMEAS th={threads} n_per={n_per} e={epochs} s={size} bs={bs} lr={lr}")
    r = train_featurizer(out="weights/ft.pt", epochs=epochs, input_size=size, hidden_dim=64, pretrained="none", batch_size=bs, lr=lr, progress=progress)
    ft = variant_create(featurizer="finetuned", weights="weights/ft.pt", metric="cosine", k=5)
    un = variant_create(featurizer="resnet18", weights="none", metric="cosine", k=5)
    rnd = variant_create(metric="random", k=5)
    print("  ft", ft.p_at_1, ft.p_at_k, "untrained r18", un.p_at_1, "random", rnd.p_at_1, f"total {time.perf_counter()-t:.1f}")
