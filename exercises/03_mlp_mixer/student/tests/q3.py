from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 4

@test_case(points=None, hidden=False)
def test_matches_mixer_tiny(mixer_forward):
    import jax.numpy as jnp
    import mixer_ref
    import numpy as np
    from grading_support import call_learner, expect_close, flax_params, randomise_flax
    rng = np.random.default_rng(6)
    model = randomise_flax(mixer_ref.create_model('mixer_tiny'), rng)
    images = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
    call = 'mixer_forward(images, params) for mixer_tiny, images (2, 32, 32, 3)'
    expect_close(call_learner(mixer_forward, images, flax_params(model), what=call), model(jnp.asarray(images)), call, atol=0.001, rtol=0.001, meaning='(batch, num_classes)', hint='Stem, blocks, pre-head LayerNorm, mean over tokens, head.')

