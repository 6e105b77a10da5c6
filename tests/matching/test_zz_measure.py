import time
import pytest
from django.core.management import call_command
from matching.services import variant_create
from matching.training import train_featurizer

@pytest.mark.parametrize("epochs,size,n,hidden", [(3,32,200,64),(5,32,200,64),(3,48,200,64),(4,64,200,64)])
def test_measure(db, epochs, size, n, hidden):
    call_command("make_demo_catalog", n=n, seed=1, size=64, verbosity=0)
    t = time.perf_counter()
    r = train_featurizer(out="weights/ft.pt", epochs=epochs, input_size=size, hidden_dim=hidden, pretrained="none", batch_size=32)
    t1 = time.perf_counter()
    res = {}
    for m in ["cosine", "l2", "hamming"]:
        v = variant_create(featurizer="finetuned", weights="weights/ft.pt", metric=m, k=5)
        res[m] = (v.p_at_1, v.p_at_k, v.status)
    rnd = variant_create(metric="random", k=5)
    print(f"\nMEAS e={epochs} s={size} n={n}: train {t1-t:.1f}s acc {r.held_out_accuracy:.2f} total {time.perf_counter()-t:.1f}s", res, "random", rnd.p_at_1)
