"""HOUV diagnosis on cached pairs (issue 3; not part of CI): P and Q subsampled to --n points (seeds 1 / 2),
houv seed = pair index. Per pair: rotation error, the best group's error, groups within 5 degrees, local
Chamfer (alpha 0.5) and inlier score (factor 2) at the answer and at the truth; a summary line.
--dump DIR writes every group's pose (<tag>_<set>.npz) and the rows (.json).

    OMP_NUM_THREADS=1 python bench/houv_diag.py --set mvp --pairs 0:16 --kw "dict(schedule=[(256,150),(1024,50)],
        lr=3e-2, lr_schedule='cosine', refine_iters=200, refine_groups=8, refine_lr=1e-2, select='inlier')"
"""
import sys, json, time, argparse
import numpy as np, torch
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parent))
from bench_houv import _cached_pairs
from fe_fast.registration import houv
from fe_fast.registration.houv import _hybrid_terms, _inlier_score, _spacing
from fe_fast.registration.metrics import evaluate, rotation_error

ap = argparse.ArgumentParser()
ap.add_argument('--set', default='mvp'); ap.add_argument('--pairs', default='0:16')
ap.add_argument('--n', type=int, default=1024)
ap.add_argument('--kw', default="dict(schedule=[(256,150),(1024,50)],lr=3e-2,lr_schedule='cosine',refine_iters=100,refine_groups=4,refine_lr=3e-3)")
ap.add_argument('--groups', type=int, default=32); ap.add_argument('--tag', default='x')
ap.add_argument('--pairs-dir', default='.gpudata/pairs'); ap.add_argument('--dump', default=None)
a = ap.parse_args()
kw = eval(a.kw)
lo, hi = map(int, a.pairs.split(':'))
ps = _cached_pairs(a.pairs_dir, a.set, lambda: (_ for _ in ()).throw(RuntimeError('pairs not cached')),
                  {'seed': 0, 'n_points': 2048, 'count': hi})

def sub(x, n, seed):
    if n is None or n >= len(x): return x
    r = np.random.default_rng(seed); return x[r.choice(len(x), n, replace=False)]

errs, secs, rows = [], [], []
dump = {}
for k in range(lo, min(hi, len(ps))):
    p = ps[k]
    P = sub(p['P'], a.n, 1); Q = sub(p['Q'], a.n, 2)
    t0 = time.time()
    r = houv(P, Q, groups=a.groups, seed=k, **kw)
    sec = time.time() - t0
    T = p['T_gt']
    ev = evaluate(r.transform.numpy(), T, P, Q)
    ge = rotation_error(r.all_R.numpy(), np.broadcast_to(T[:3, :3], (a.groups, 3, 3)))
    best = int(np.argmin(ge))
    # scores at the truth and at the answer (normalised coordinates, as houv computes them)
    Pt = torch.tensor(P, dtype=torch.float32); Qt = torch.tensor(Q, dtype=torch.float32)
    cP, cQ = Pt.mean(0), Qt.mean(0)
    s = float(max((Pt - cP).norm(dim=1).max(), (Qt - cQ).norm(dim=1).max()))
    Pn, Qn = ((Pt - cP) / s)[None], ((Qt - cQ) / s)[None]
    def nt(R, t):
        R = torch.tensor(R, dtype=torch.float32); t = torch.tensor(t, dtype=torch.float32)
        return R[None], ((R @ cP + t - cQ) / s)[None]
    tau = 2.0 * max(_spacing(Pn[0]), _spacing(Qn[0]))
    tau2 = torch.tensor([tau * tau])
    sc = {}
    for name, (R_, t_) in (("gt", (T[:3, :3], T[:3, 3])), ("ans", (r.R.numpy(), r.t.numpy()))):
        Rn, tn = nt(R_, t_)
        l, _ = _hybrid_terms(Pn, Qn, Rn, tn, kw.get('alpha', 0.5), 0.0)
        sc[name] = (float(l), float(_inlier_score(Pn, Qn, Rn, tn, tau2)))
    print(f"{a.set}#{k} ov {p.get('overlap', 0):.2f} rot {ev['rot_err']:6.1f} trans {ev['trans_err']:.3f} bestg {ge[best]:6.1f} "
          f"n<5 {(ge < 5).sum():2d} g{r.group} | lcd ans {sc['ans'][0]:.5f} gt {sc['gt'][0]:.5f} | inl ans {sc['ans'][1]:.3f} gt {sc['gt'][1]:.3f} | {sec:.1f}s", flush=True)
    errs.append(ev['rot_err']); secs.append(sec)
    rows.append(dict(pair=k, overlap=p.get('overlap'), **ev, best_group=float(ge[best]), n5=int((ge < 5).sum()), seconds=sec, scores=sc, group_err=ge.tolist()))
    dump[f"R{k}"] = r.all_R.numpy(); dump[f"t{k}"] = r.all_t.numpy(); dump[f"g{k}"] = np.array(r.group)
e = np.array(errs)
print(f"SUMMARY {a.tag} {a.set} {a.pairs} N={a.n} mean rot {e.mean():.2f} median {np.median(e):.2f} within5 {np.mean(e < 5):.2f} "
      f"recall {np.mean([x['success'] for x in rows]):.2f} s/pair {np.mean(secs):.1f}", flush=True)
if a.dump:
    np.savez(f"{a.dump}/{a.tag}_{a.set}.npz", **dump)
    json.dump(rows, open(f"{a.dump}/{a.tag}_{a.set}.json", "w"))
