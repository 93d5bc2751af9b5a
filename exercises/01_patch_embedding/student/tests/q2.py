from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 3

@test_case(points=None, hidden=False)
def test_shape_and_first_patches(patchify):
    import numpy as np
    from grading_support import call_learner, expect_close, expect_shape
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    got = call_learner(patchify, images, 4, what='patchify(x, 4) with x of shape (2, 32, 32, 3)')
    expect_shape(got, (2, 64, 48), 'patchify(x, 4)', meaning='(batch, S, P·P·3)', hint='Did you use the patch size per side?')
    expect_close(got[:, 0], images[:, :4, :4].reshape(2, -1), 'patchify(x, 4)[:, 0]', meaning='(batch, P·P·3): the top-left patch', hint='Token 0 is the top-left patch, flattened with patch.reshape(-1).')
    expect_close(got[:, 1], images[:, :4, 4:8].reshape(2, -1), 'patchify(x, 4)[:, 1]', hint='Token 1 is the next patch to the right (row-major order).')

