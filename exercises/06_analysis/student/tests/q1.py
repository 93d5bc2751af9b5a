from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 2

@test_case(points=None, hidden=False)
def test_matches_the_permutation_experiment(shuffle_pixels):
    import mixer_ref.analysis
    import numpy as np
    from grading_support import call_learner, expect_close
    rng = np.random.default_rng(61)
    images = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    order = mixer_ref.analysis.global_shuffle(4, seed=0)
    want = mixer_ref.analysis.shuffle_images(images, order)
    call = 'shuffle_pixels(images, order) with images (2, 4, 4, 3)'
    expect_close(call_learner(shuffle_pixels, images, order, what=call), want, call, meaning='(B, H, W, C)', hint='Flatten (H, W) row-major, take the positions in `order`, fold back.')

