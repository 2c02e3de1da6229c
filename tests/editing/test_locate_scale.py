"""locate() at scale: the chunked, cached, resumable run gives exactly the result of the plain
in-memory pipeline (classify -> positives -> per-sample gradients -> s_grad_reduce), resumes an
interrupted gradient pass without recomputing finished chunks, refuses a cache written for other
arguments, and sizes its batches from the generator."""
import importlib

import pytest
import torch
import torch.nn.functional as F

from fe_fast.editing.locate import (_region_masks, attribute_index, auto_batch_sizes, classify, locate,
                                    per_sample_grads, positives_for_attribute, sample_styles, style_offsets)
from fe_fast.ops.s_grad_reduce import s_grad_reduce

from planted import PLANT_CHANNEL, PLANT_LAYER, PatchParser

L = importlib.import_module("fe_fast.editing.locate")  # the module (fe_fast.editing.locate is also the function)
KW = dict(n_samples=40, k=3, max_positives=10, batch_size=3)


def _reference_attribute(G, clf, target, n_samples, k, max_positives, batch_size):
    """The pipeline of thesis Fig. 6-1 written plainly (everything in memory, one reduction)."""
    idx = attribute_index(clf, target)
    G.eval()
    clf.eval()
    _, s = sample_styles(G, n_samples, 0)
    pos = positives_for_attribute(classify(G, clf, s), idx, 0.5, max_positives)

    def obj(img, start):
        return F.softplus(-clf(img)[:, idx])

    grads = per_sample_grads(G, [t[pos] for t in s], obj, batch_size)
    return s_grad_reduce(grads, style_offsets(G), None, k), int(pos.sum())


def _reference_region(G, parser, n_samples, k, batch_size):
    _, s = sample_styles(G, n_samples, 0)
    masks = _region_masks(G, parser, s, 1, batch_size, None, "const")
    pos = masks.flatten(1).any(1)
    m = masks[pos].float()
    area = m.flatten(1).sum(1).clamp_min(1.0)

    def obj(img, start):
        return (img.mean(1) * m[start:start + img.shape[0]]).flatten(1).sum(1) / area[start:start + img.shape[0]]

    grads = per_sample_grads(G, [t[pos] for t in s], obj, batch_size)
    return s_grad_reduce(grads, style_offsets(G), None, k), int(pos.sum())


def _same(cs, ref, n_pos):
    assert cs.n_positives == n_pos
    assert torch.equal(cs.mean_grad, ref.mean)
    assert torch.equal(cs.layer_response, ref.layer)
    l = int(torch.argmax(ref.layer))
    assert [(c.layer, c.channel) for c in cs] == [(l, int(c)) for c in ref.topk_idx[l]]


def test_attribute_run_equals_the_in_memory_pipeline(G, clf, tmp_path):
    ref, n_pos = _reference_attribute(G, clf, "red_patch", **KW)
    _same(locate(G, clf, "red_patch", **KW), ref, n_pos)
    _same(locate(G, clf, "red_patch", cache_dir=tmp_path / "c", teacher_batch_size=7, **KW), ref, n_pos)
    _same(locate(G, clf, "red_patch", cache_dir=tmp_path / "c", teacher_batch_size=7, **KW), ref, n_pos)  # cached


def test_region_run_equals_the_in_memory_pipeline(G):
    ref, n_pos = _reference_region(G, PatchParser(), 10, 3, 4)
    cs = locate(G, PatchParser(), "patch", n_samples=10, k=3, batch_size=4)
    _same(cs, ref, n_pos)
    assert (cs[0].layer, cs[0].channel) == (PLANT_LAYER, PLANT_CHANNEL)


def test_region_run_from_the_cache(G, tmp_path, monkeypatch):
    """The parser's masks are cached at the teacher's resolution and give the same objective back."""
    kw = dict(n_samples=10, k=3, batch_size=4, teacher_batch_size=3, teacher_size=32)
    first = locate(G, PatchParser(), "patch", cache_dir=tmp_path, **kw)
    assert len(list(tmp_path.glob("teacher_*.pt"))) == 4 and len(list(tmp_path.glob("grads_*.pt"))) == 3
    monkeypatch.setattr(L, "render", lambda *a, **k: pytest.fail("a cached run renders nothing"))
    monkeypatch.setattr(L, "per_sample_grads", lambda *a, **k: pytest.fail("a cached run computes no gradient"))
    again = locate(G, PatchParser(), "patch", cache_dir=tmp_path, **kw)
    assert torch.equal(again.mean_grad, first.mean_grad) and again.to_json() == first.to_json()
    assert (first[0].layer, first[0].channel) == (PLANT_LAYER, PLANT_CHANNEL)


def test_streamed_reduction_equals_packed(G, clf):
    """packed_budget=0: gradients reduced chunk by chunk (float64 sums), memory independent of P."""
    a = locate(G, clf, "red_patch", selection="global", **KW)
    b = locate(G, clf, "red_patch", selection="global", packed_budget=0, **KW)
    assert [(c.layer, c.channel) for c in a] == [(c.layer, c.channel) for c in b]
    torch.testing.assert_close(b.mean_grad, a.mean_grad, rtol=1e-6, atol=0)
    torch.testing.assert_close(b.layer_response, a.layer_response, rtol=1e-6, atol=0)


def test_interrupted_gradient_pass_resumes(G, clf, tmp_path, monkeypatch):
    full = locate(G, clf, "red_patch", **KW)  # 10 positives in chunks of 3: 4 gradient chunks
    real = L.per_sample_grads
    calls = []

    def failing(*a, **kw):
        calls.append(a[1][0].shape[0])
        if len(calls) > 2:
            raise KeyboardInterrupt("killed in the gradient pass")
        return real(*a, **kw)

    monkeypatch.setattr(L, "per_sample_grads", failing)
    with pytest.raises(KeyboardInterrupt):
        locate(G, clf, "red_patch", cache_dir=tmp_path, **KW)
    assert sorted(p.name for p in tmp_path.glob("grads_*.pt")) == ["grads_000000.pt", "grads_000001.pt"]
    calls.clear()
    monkeypatch.setattr(L, "per_sample_grads", lambda *a, **kw: calls.append(a[1][0].shape[0]) or real(*a, **kw))
    again = locate(G, clf, "red_patch", cache_dir=tmp_path, **KW)
    assert calls == [3, 1]  # only the two unfinished chunks
    assert [(c.layer, c.channel, c.rank) for c in again] == [(c.layer, c.channel, c.rank) for c in full]
    assert torch.equal(again.mean_grad, full.mean_grad) and torch.equal(again.sigma, full.sigma)
    calls.clear()
    locate(G, clf, "red_patch", cache_dir=tmp_path, selection="whole", **KW)  # another selection: all cached
    assert calls == []


def test_cache_for_other_arguments_is_refused(G, clf, tmp_path):
    locate(G, clf, "red_patch", cache_dir=tmp_path, **KW)
    with pytest.raises(ValueError, match=r"other arguments \(n_samples: cached 40, now 41\)"):
        locate(G, clf, "red_patch", cache_dir=tmp_path, **{**KW, "n_samples": 41})
    with pytest.raises(ValueError, match=r"other arguments \(target"):
        locate(G, clf, "bright", cache_dir=tmp_path, **KW)
    (tmp_path / "x").write_text("")
    with pytest.raises(ValueError, match="not a directory"):
        locate(G, clf, "red_patch", cache_dir=tmp_path / "x", **KW)
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="is not an fe-fast locate cache"):
        locate(G, clf, "red_patch", cache_dir=tmp_path / "y", **KW)
    (tmp_path / "y" / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match="unreadable manifest.json"):
        locate(G, clf, "red_patch", cache_dir=tmp_path / "y", **KW)


def test_cache_for_other_weights_is_refused(G, clf, tmp_path):
    from planted import centred_classifier

    locate(G, clf, "red_patch", cache_dir=tmp_path, **KW)
    other = centred_classifier(G, 20)
    with pytest.raises(ValueError, match=r"\(teacher: cached"):
        locate(G, other, "red_patch", cache_dir=tmp_path, **KW)


def test_batch_sizes(G, clf):
    from fe_fast.stylegan import Generator

    assert auto_batch_sizes(G) == (64, 16)
    assert auto_batch_sizes(Generator(1024, seed=0)) == (5, 2)  # config-f 1024: <= 4 GiB of activations
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        locate(G, clf, "red_patch", n_samples=4, batch_size=0)
    with pytest.raises(ValueError, match="teacher_batch_size"):
        locate(G, clf, "red_patch", n_samples=4, teacher_batch_size=2.5)


def test_max_positives_must_be_positive(G, clf):
    """A negative limit used to slice the sorted samples from the end and take negatives as positives."""
    logits = torch.tensor([[3.0], [-3.0], [2.0], [-2.0], [-1.0]])
    assert positives_for_attribute(logits, 0, 0.5, 1).tolist() == [True, False, False, False, False]
    assert positives_for_attribute(logits, 0, 0.5, None).tolist() == [True, False, True, False, False]
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="max_positives must be a positive int or None"):
            positives_for_attribute(logits, 0, 0.5, bad)
        with pytest.raises(ValueError, match="max_positives must be a positive int or None"):
            locate(G, clf, "red_patch", n_samples=4, max_positives=bad)


def test_torchrun_environment_is_checked(monkeypatch):
    from fe_fast._distributed import init_from_env, is_main

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env() is False and is_main()  # one process: nothing to join
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer"):
        init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="MASTER_ADDR is not set"):
        init_from_env()


def test_teacher_input_size():
    """Teachers that resize themselves (``input_size``) get G's image as it is; the toy teachers get
    at most 256x256, through the teachers' resize (whole frame, antialiased bilinear)."""
    from fe_fast.teachers.preprocess import resize_for_teacher

    img = torch.rand(2, 3, 512, 512) * 2 - 1

    class SelfResizing(torch.nn.Module):
        input_size = 224

    assert L._teacher_input(img, None, SelfResizing()) is img
    small = L._teacher_input(img, None, object())
    assert small.shape[-2:] == (256, 256) and torch.equal(small, resize_for_teacher(img, 256))
    assert L._teacher_input(img, 64, SelfResizing()).shape[-2:] == (64, 64)  # an explicit size wins
    assert L._teacher_input(img[..., :128, :128], None, object()).shape[-1] == 128  # small: untouched


def test_fingerprint_covers_settings_outside_the_state_dict():
    """Same weights, another conv_clamp (or a teacher's input_size): another generator for the cache."""
    from fe_fast.editing.cache import module_fingerprint
    from fe_fast.stylegan import Generator

    kw = dict(z_dim=8, w_dim=8, n_mlp=1, channel_base=64, channel_max=8, seed=0)
    a, b = Generator(8, **kw), Generator(8, conv_clamp=256, **kw)
    b.load_state_dict(a.state_dict())
    assert module_fingerprint(a) == module_fingerprint(Generator(8, **kw))
    assert module_fingerprint(a) != module_fingerprint(b)

    class Teacher(torch.nn.Module):
        def __init__(self, input_size):
            super().__init__()
            self.input_size = input_size

    assert module_fingerprint(Teacher(224)) != module_fingerprint(Teacher(256))
    # a setting JSON cannot write (its repr holds an address) still gives the same fingerprint
    a.config, b.config = {"act": object()}, {"act": object()}
    b.load_state_dict(a.state_dict())
    assert module_fingerprint(a) == module_fingerprint(b)


def test_bad_layers_are_refused_before_any_rendering(G, clf, monkeypatch):
    monkeypatch.setattr(L, "render", lambda *a, **k: pytest.fail("rendered before checking layers"))
    for bad, match in (("first", "layers must be 'auto', 'all'"), ([99], "layer 99 out of range"), ([], "empty")):
        with pytest.raises(ValueError, match=match):
            locate(G, clf, "red_patch", n_samples=4, layers=bad)


def _failing_rank_worker(rank, world, port, cache_dir, out_dir):
    """One rank of a 2-process locate in which one rank fails: rank 0 refuses the cache (written
    for seed 0, asked for seed 1) before the barrier; then rank 1 fails in its gradient chunks."""
    import datetime
    import os

    import torch.distributed as dist

    from planted import PlantedGenerator, centred_classifier, tiny_generator

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # a short timeout: without the shared error the waiting rank would fail here after 20 s, not 30 min
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=20))
    G = PlantedGenerator(tiny_generator())
    clf = centred_classifier(G, 48)
    seen = []
    try:
        locate(G, clf, "red_patch", cache_dir=cache_dir, **{**KW, "seed": 1})
    except ValueError as e:
        seen.append(("ValueError", str(e)))
    if rank == 1:
        def boom(*a, **k):
            raise RuntimeError("out of memory\non a second line")
        L.per_sample_grads = boom
    try:
        locate(G, clf, "red_patch", **KW)
    except RuntimeError as e:
        seen.append(("RuntimeError", str(e)))
    dist.destroy_process_group()
    torch.save(seen, os.path.join(out_dir, f"rank{rank}.pt"))


def test_a_failing_rank_stops_every_rank_with_its_error(G, clf, tmp_path):
    """Under torchrun an exception on one rank used to leave the others in the next collective until
    the gloo timeout; now every rank raises the failing rank's error as the same one line."""
    import socket

    import torch.multiprocessing as mp

    locate(G, clf, "red_patch", cache_dir=tmp_path / "c", **KW)  # a cache for seed 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_failing_rank_worker, args=(2, port, str(tmp_path / "c"), str(tmp_path)), nprocs=2, join=True)
    seen = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert seen[0] == seen[1]
    (kind0, refused), (kind1, boom) = seen[0]
    assert kind0 == "ValueError" and refused.startswith("rank 0: cache_dir ") and "seed: cached 0, now 1" in refused
    assert (kind1, boom) == ("RuntimeError", "rank 1: out of memory")


def test_backend_follows_the_device(monkeypatch):
    """nccl for a run on CUDA (the rank's device set to LOCAL_RANK first), gloo on the CPU."""
    import torch.distributed as dist

    from fe_fast import _distributed

    calls = []
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("device", i)))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "4")
    for name, value in (("RANK", "3"), ("LOCAL_RANK", "3"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")):
        monkeypatch.setenv(name, value)
    assert _distributed.init_from_env("cpu") and calls == [("init", "gloo")]
    calls.clear()
    assert _distributed.init_from_env(torch.device("cuda")) and calls == [("device", 1), ("init", "nccl")]
    calls.clear()
    assert _distributed.init_from_env("cuda:0") and calls == [("init", "nccl")]  # an explicit device stays
