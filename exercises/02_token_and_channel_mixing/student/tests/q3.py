from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 3

@test_case(points=None, hidden=False)
def test_matches_mixer_ref_token_branch(token_mixing):
    import dataclasses
    import jax.numpy as jnp
    import mixer_ref
    import mixer_ref.flax
    import numpy as np
    from flax import nnx
    from grading_support import call_learner, expect_close, flax_params, randomise_flax
    rng = np.random.default_rng(2)
    cfg = dataclasses.replace(mixer_ref.get_config('mixer_tiny'), image_size=16, hidden_dim=24, tokens_mlp_dim=8)
    block = randomise_flax(mixer_ref.flax.MixerBlock(cfg, rngs=nnx.Rngs(0)), rng)
    block.channel_mixing.fc2.kernel[...] *= 0
    block.channel_mixing.fc2.bias[...] *= 0
    x = rng.normal(size=(2, 16, 24)).astype(np.float32)
    call = 'token_mixing(x, params) with x (B, S, C) = (2, 16, 24)'
    expect_close(call_learner(token_mixing, x, flax_params(block), what=call), block(jnp.asarray(x)), call, atol=0.0001, meaning='(B, S, C)', hint='LayerNorm over channels, then the MLP on every column (swap the last two axes), swap back, and add the input.')

