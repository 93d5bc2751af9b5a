from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 3

@test_case(points=None, hidden=False)
def test_matches_mixer_ref_channel_branch(channel_mixing):
    import jax.numpy as jnp
    import mixer_ref
    import mixer_ref.flax
    import numpy as np
    from flax import nnx
    from grading_support import call_learner, expect_close, flax_params, randomise_flax
    rng = np.random.default_rng(3)
    block = randomise_flax(mixer_ref.flax.MixerBlock(mixer_ref.get_config('mixer_tiny'), rngs=nnx.Rngs(0)), rng)
    block.token_mixing.fc2.kernel[...] *= 0
    block.token_mixing.fc2.bias[...] *= 0
    x = rng.normal(size=(2, 64, 64)).astype(np.float32)
    call = 'channel_mixing(u, params) with u (2, 64, 64)'
    expect_close(call_learner(channel_mixing, x, flax_params(block), what=call), block(jnp.asarray(x)), call, atol=0.0001, hint='LayerNorm with norm2, the MLP on every row, and the skip connection.')

