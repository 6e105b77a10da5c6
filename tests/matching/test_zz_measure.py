import time
import pytest
import torch
from django.core.management import call_command
from matching.training import train_featurizer

@pytest.mark.parametrize("n,epochs,size,bs,lr", [(300,10,32,16,3e-3)])
def test_measure(db, n, epochs, size, bs, lr):
    torch.set_num_threads(1)
    call_command("make_demo_catalog", n=n, seed=1, size=64, verbosity=0)
    t = time.perf_counter()
    def progress(e, E, loss, acc):
        print(f"  e{e} loss {loss:.3f} acc {acc:.2f} t {time.perf_counter()-t:.1f}", flush=True)
    print(f"\nMEAS n={n} e={epochs} s={size} bs={bs} lr={lr}")
    train_featurizer(out="weights/ft.pt", epochs=epochs, input_size=size, hidden_dim=64, pretrained="none", batch_size=bs, lr=lr, progress=progress)
