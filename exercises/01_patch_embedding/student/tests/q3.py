from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 3

@test_case(points=None, hidden=False)
def test_matches_mixer_ref_stem(embed_patches):
    import jax.numpy as jnp
    import mixer_ref
    import mixer_ref.flax
    import numpy as np
    from flax import nnx
    from grading_support import call_learner, expect_close, randomise_flax
    cfg = mixer_ref.get_config('mixer_tiny')
    rng = np.random.default_rng(3)
    stem = randomise_flax(mixer_ref.flax.PatchEmbed(cfg, rngs=nnx.Rngs(0)), rng)
    images = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
    want = np.asarray(stem(jnp.asarray(images)))
    kernel, bias = (np.asarray(stem.proj.kernel[...]), np.asarray(stem.proj.bias[...]))
    got = call_learner(embed_patches, images, kernel, bias, what='embed_patches(x, kernel, bias) for mixer_tiny')
    expect_close(got, want, 'embed_patches(x, kernel, bias) for mixer_tiny', atol=0.0001, meaning='(batch, S, C) = (2, 64, 64)', hint="Flatten the kernel's (P, P, 3) axes in the same order as the patches.")

