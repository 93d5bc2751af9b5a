from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 2

@test_case(points=None, hidden=False)
def test_matches_mixer_ref_layernorm(layer_norm):
    import jax.numpy as jnp
    import mixer_ref
    import mixer_ref.flax
    import numpy as np
    from flax import nnx
    from grading_support import call_learner, expect_close, flax_params, randomise_flax
    rng = np.random.default_rng(0)
    block = randomise_flax(mixer_ref.flax.MixerBlock(mixer_ref.get_config('mixer_tiny'), rngs=nnx.Rngs(0)), rng)
    p = flax_params(block)['norm1']
    x = rng.normal(size=(2, 64, 64)).astype(np.float32)
    want = block.norm1(jnp.asarray(x))
    call = 'layer_norm(x, scale, bias) with x of shape (2, 64, 64)'
    expect_close(call_learner(layer_norm, x, p['scale'], p['bias'], what=call), want, call, atol=0.0001, hint='Normalise each token over its C channels (the last axis).')

