from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 2

@test_case(points=None, hidden=False)
def test_matches_mixer_ref_mlpblock(mlp):
    import jax.numpy as jnp
    import mixer_ref
    import mixer_ref.flax
    import numpy as np
    from flax import nnx
    from grading_support import call_learner, expect_close, flax_params, randomise_flax
    rng = np.random.default_rng(1)
    block = mixer_ref.flax.MlpBlock(16, 32, approximate_gelu=True, dropout=0.0, rngs=nnx.Rngs(0))
    randomise_flax(block, rng)
    x = 2 * rng.normal(size=(3, 5, 16)).astype(np.float32)
    call = 'mlp(x, params) with x (3, 5, 16) and hidden width 32'
    expect_close(call_learner(mlp, x, flax_params(block), what=call), block(jnp.asarray(x)), call, hint='Dense, tanh-approximate GELU, Dense; kernels are (in, out).')

