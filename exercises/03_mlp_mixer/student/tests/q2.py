from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 3

@test_case(points=None, hidden=False)
def test_matches_mixer_ref_block(mixer_block):
    import jax.numpy as jnp
    import mixer_ref
    import mixer_ref.flax
    import numpy as np
    from flax import nnx
    from grading_support import call_learner, expect_close, flax_params, randomise_flax
    rng = np.random.default_rng(5)
    block = randomise_flax(mixer_ref.flax.MixerBlock(mixer_ref.get_config('mixer_tiny'), rngs=nnx.Rngs(0)), rng)
    x = rng.normal(size=(2, 64, 64)).astype(np.float32)
    call = 'mixer_block(x, params) for mixer_tiny, x (2, 64, 64)'
    expect_close(call_learner(mixer_block, x, flax_params(block), what=call), block(jnp.asarray(x)), call, atol=0.0001, meaning='(B, S, C)', hint='Token mixing first, then channel mixing on its output U; two skips.')

