from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 2

@test_case(points=None, hidden=False)
def test_matches_optax_schedule(warmup_linear_decay):
    import numpy as np
    import optax
    from grading_support import call_learner
    peak, warmup, total = (0.001, 10, 50)
    want = optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), optax.linear_schedule(peak, 0.0, total - warmup)], [warmup])
    for step in [0, 1, 5, 9, 10, 11, 30, 49, 50, 60]:
        call = f'warmup_linear_decay({step}, peak_lr={peak}, warmup_steps={warmup}, total_steps={total})'
        got = call_learner(warmup_linear_decay, step, peak, warmup, total, what=call)
        try:
            value = float(np.asarray(got))
        except (TypeError, ValueError):
            raise AssertionError(f'{call} returned {got!r}; expected a number. Is the function finished (no `...` left) and does it `return`?') from None
        expected = float(want(step))
        assert abs(value - expected) <= 1e-09 + 1e-05 * abs(expected), f'{call} returned {value:.6g}; expected {expected:.6g}: 0 at step 0, the peak {peak} at step {warmup}, 0 at step {total} and after.'

