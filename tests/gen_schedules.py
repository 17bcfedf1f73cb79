#!/usr/bin/python3
"""gen_schedules.py - torch.optim.lr_scheduler values for tests/test_fit.c.

    /usr/bin/python3 tests/gen_schedules.py      (from the repository root)

Rewrites tests/fixtures/schedules.txt: one line per case,
    name count lr_0 ... lr_{count-1}
the learning rate in use during step t (read before scheduler.step()), and for
the plateau case a line "plateau_metric count m_0 ..." with the metric given
to step(m_t) after step t. The C test builds the same schedules as dl_schedule.
"""
import torch
from torch.optim import lr_scheduler as S

N = 40
LR = 0.1


def run(make, metrics=None):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    sched = make(opt)
    out = []
    for t in range(N):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[t])
    return out


metrics = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.79995, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.5] + [0.5] * (N - 14)
cases = [
    ("step", lambda o: S.StepLR(o, step_size=7, gamma=0.5)),
    ("multistep", lambda o: S.MultiStepLR(o, milestones=[5, 12, 20], gamma=0.3)),
    ("exponential", lambda o: S.ExponentialLR(o, gamma=0.9)),
    ("cosine", lambda o: S.CosineAnnealingLR(o, T_max=N, eta_min=0.001)),
    ("sgdr", lambda o: S.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.002)),
    ("onecycle", lambda o: S.OneCycleLR(o, max_lr=LR, total_steps=N)),
    ("warmup_step", lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.25, total_iters=4),
                                                 S.StepLR(o, step_size=5, gamma=0.5)], milestones=[4])),
    ("warmup_cosine", lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=5),
                                                   S.CosineAnnealingLR(o, T_max=N - 5)], milestones=[5])),
]
with open("tests/fixtures/schedules.txt", "w") as f:
    for name, make in cases:
        f.write("%s %d %s\n" % (name, N, " ".join("%.9g" % v for v in run(make))))
    f.write("plateau_metric %d %s\n" % (N, " ".join("%.9g" % v for v in metrics)))
    plateau = run(lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=2, cooldown=1, min_lr=0.02), metrics)
    f.write("plateau %d %s\n" % (N, " ".join("%.9g" % v for v in plateau)))
    # patience 0: every step(m) without improvement lowers the rate (dl_schedule's 0 is 0, not a default)
    plateau_p0 = run(lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=0, min_lr=0.001), metrics)
    f.write("plateau_p0 %d %s\n" % (N, " ".join("%.9g" % v for v in plateau_p0)))
