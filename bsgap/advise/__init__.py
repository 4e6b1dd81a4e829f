"""``python -m bsgap.advise``: which batch size reaches a target accuracy soonest on this machine.

Computational speed is measured per batch size (``throughput``); convergence speed comes from one
pilot run (``pilot``) and three estimates of the critical batch size side by side -- the gradient
noise scale over the pilot, branched training from its checkpoints (``branches``, ``branched``),
and a measured sweep's fit when one exists (``sweep_fit``) -- turned into steps, examples and
seconds to the target per batch size (``predict``, ``advice``; McCandlish et al. 2018). The
measurements are files and run directories under the workdir, each reused when present
(``records``, ``run``). README section "Which batch size? `bsgap.advise`".
"""
