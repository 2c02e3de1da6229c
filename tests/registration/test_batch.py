"""register_pairs: many pairs from files or arrays, best-of settings, and sharding over
torch.distributed ranks (two gloo processes give the rows of one process)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fe_fast.registration import PRESETS, houv, register_pairs

FAST = PRESETS["thesis"].replace(starts={"groups": 2}, schedule={"iters": 10, "lr": 0.03})


@pytest.fixture()
def pairs_csv(tmp_path):
    from fe_fast.datasets.bunny import bundled_pair

    d = bundled_pair()
    np.save(tmp_path / "src.npy", d["P"][:100])
    np.save(tmp_path / "tgt.npy", d["Q"][:100])
    np.save(tmp_path / "gt.npy", d["T_gt"] if "T_gt" in d else np.eye(4))
    rows = "".join(f"p{i},src.npy,{'tgt' if i % 2 else 'src'}.npy,gt.npy\n" for i in range(5))
    (tmp_path / "pairs.csv").write_text("name,src,tgt,gt\n" + rows)
    return tmp_path / "pairs.csv"


def test_rows_match_single_houv_calls(pairs_csv):
    rows = register_pairs(pairs_csv, FAST, pairs_per_call=2)
    assert [r["name"] for r in rows] == [f"p{i}" for i in range(5)] and [r["row"] for r in rows] == list(range(5))
    P = np.load(pairs_csv.parent / "src.npy")
    Q = np.load(pairs_csv.parent / "tgt.npy")
    one = houv(P, Q, FAST)
    np.testing.assert_allclose(rows[1]["transform"], one.transform.numpy(), atol=1e-5)
    assert {"rot_err", "trans_err", "rmse", "success"} <= set(rows[0])


def test_array_pairs_and_errors():
    P = np.random.default_rng(0).normal(size=(60, 3))
    rows = register_pairs([{"src": P, "tgt": P, "name": "self"}], FAST)
    assert rows[0]["name"] == "self" and "src" not in rows[0]  # arrays are not echoed
    with pytest.raises(ValueError, match="pairs\\[0\\]"):
        register_pairs([{"src": P}], FAST)
    with pytest.raises(ValueError, match="pairs_per_call"):
        register_pairs([{"src": P, "tgt": P}], FAST, pairs_per_call=0)
    with pytest.raises(ValueError, match="one pair per call"):
        register_pairs([{"src": P, "tgt": P}], [FAST, FAST], pairs_per_call=2)
    with pytest.raises(ValueError, match="torchrun"):
        register_pairs([{"src": P, "tgt": P}], FAST, sharded=True)
    with pytest.raises(ValueError, match="lie on one line"):
        register_pairs([{"src": np.outer(np.arange(5.0), [1, 1, 1]), "tgt": P}], FAST)


def test_best_of_rows_name_the_preset():
    from fe_fast.registration.presets import preset

    P = np.random.default_rng(0).normal(size=(60, 3))
    small = dict(schedule={"stages": ((30, 4), (60, 2))}, starts={"groups": 2})
    settings = [preset("robust").replace(**small, refinement={"iters": 1}),
                preset("halving-local").replace(**small, refinement={"iters": 1}, prune=1)]
    rows = register_pairs([{"src": P, "tgt": P}], settings, names=["robust", "halving-local"], accept_score=2.0)
    assert rows[0]["preset"] == "robust" and len(rows[0]["best_of"]) == 1


_WORKER = """
import json, os, sys
import numpy as np
from fe_fast.registration import PRESETS, register_pairs
rows = register_pairs(sys.argv[1], PRESETS["thesis"].replace(starts={"groups": 2}, schedule={"iters": 10, "lr": 0.03}),
                      sharded=True)
if rows is not None:
    open(sys.argv[2], "w").write(json.dumps(rows))
else:
    open(sys.argv[2] + ".rank1", "w").write("none")
os._exit(0)  # skip interpreter teardown: gloo's can abort a rank after its work is done
"""


_WORKER_ERROR = """
import os, sys
from fe_fast.registration import PRESETS, register_pairs
try:
    register_pairs(sys.argv[1], PRESETS["thesis"].replace(starts={"groups": 2}, schedule={"iters": 2}), sharded=True)
    msg = "no error"
except ValueError as e:
    msg = str(e)
open(sys.argv[2] + os.environ["RANK"], "w").write(msg)
os._exit(0)  # skip interpreter teardown: gloo's can abort a rank after its work is done
"""


def _two_ranks(script, *argv):
    port = str(_free_port())
    root = str(Path(__file__).resolve().parents[2])
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port, OMP_NUM_THREADS="1", PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        procs.append(subprocess.Popen([sys.executable, "-c", script, *argv], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]


def test_sharded_error_on_one_rank_reaches_every_rank(pairs_csv, tmp_path):
    """Rank 1's pair has a cloud on one line: both ranks raise the same one-line ValueError."""
    np.save(tmp_path / "line.npy", np.outer(np.arange(10.0), [1.0, 2.0, 3.0]))
    (tmp_path / "bad.csv").write_text("name,src,tgt\na,src.npy,src.npy\nb,line.npy,src.npy\n")
    _two_ranks(_WORKER_ERROR, str(tmp_path / "bad.csv"), str(tmp_path / "msg"))
    msgs = [(tmp_path / f"msg{r}").read_text() for r in (0, 1)]
    assert msgs[0] == msgs[1] and msgs[0].startswith("rank 1: ") and "lie on one line" in msgs[0]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sharded_over_two_ranks_equals_one_process(pairs_csv, tmp_path):
    """Two gloo ranks (as torchrun starts them): rank 0 returns every pair in order, equal to an
    unsharded run; rank 1 returns None."""
    out = tmp_path / "rows.json"
    _two_ranks(_WORKER, str(pairs_csv), str(out))
    sharded = json.loads(out.read_text())
    assert Path(str(out) + ".rank1").read_text() == "none"
    whole = register_pairs(pairs_csv, FAST)
    assert [r["name"] for r in sharded] == [r["name"] for r in whole]
    for a, b in zip(sharded, whole):
        np.testing.assert_allclose(a["transform"], b["transform"], atol=1e-5)


def test_summarize_and_write_rows(tmp_path):
    from fe_fast.registration.batch import summarize
    from fe_fast.registration.io import write_rows

    rows = [{"name": "a", "rot_err": 1.0, "success": True}, {"name": "b", "rot_err": 3.0, "success": False},
            {"name": "c"}]
    assert summarize(rows) == {"pairs": 3, "with_gt": 2, "mean_rot_err": 2.0, "recall": 0.5}
    assert summarize(rows[2:]) == {"pairs": 1}
    path = write_rows(tmp_path / "sub" / "r.jsonl", rows)
    assert [json.loads(x) for x in path.read_text().splitlines()] == rows
