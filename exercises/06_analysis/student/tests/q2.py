from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 3

@test_case(points=None, hidden=False)
def test_convolutions_and_a_random_matrix(toeplitz_share):
    import math
    import mixer_ref.analysis
    import numpy as np
    from grading_support import call_learner
    g = 3
    rng = np.random.default_rng(63)
    kernel = rng.normal(size=(2 * g - 1, 2 * g - 1))
    dr, dc = mixer_ref.analysis.grid_offsets(g)
    cases = {'a convolution on a 3×3 grid': kernel[dr, dc], 'a random 9×9 matrix': rng.normal(size=(9, 9))}
    for what, a in cases.items():
        want = mixer_ref.analysis.toeplitz_share(a)
        got = call_learner(toeplitz_share, a, what=f'toeplitz_share({what})')
        try:
            value = float(got)
        except (TypeError, ValueError):
            raise AssertionError(f'toeplitz_share({what}) returned {got!r}; expected a number.') from None
        assert math.isclose(value, want, rel_tol=1e-06, abs_tol=1e-09), f"toeplitz_share({what}) returned {value:.6g}; expected {want:.6g}. Group the entries by the signed offset (Δrow, Δcol) on the patch grid, replace each by its group's mean, and compare squared Frobenius norms."

