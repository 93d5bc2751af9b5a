from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 2

@test_case(points=None, hidden=False)
def test_torch_stem_agrees(kernel_to_torch):
    import jax.numpy as jnp
    import mixer_ref
    import mixer_ref.flax
    import mixer_ref.interop
    import mixer_ref.torch
    import numpy as np
    import torch
    from flax import nnx
    from grading_support import as_numpy, call_learner, expect_close, randomise_flax
    cfg = mixer_ref.get_config('mixer_tiny')
    rng = np.random.default_rng(4)
    stem = randomise_flax(mixer_ref.flax.PatchEmbed(cfg, rngs=nnx.Rngs(0)), rng)
    kernel = np.asarray(stem.proj.kernel[...])
    weight = call_learner(kernel_to_torch, kernel, what='kernel_to_torch(kernel)')
    expect_close(weight, mixer_ref.interop.CONV.to_theirs(kernel), 'kernel_to_torch(kernel)', meaning='(C, 3, P, P)', hint='Move the axes (u, v, k, c) to (c, k, u, v).')
    torch_stem = mixer_ref.torch.PatchEmbed(cfg)
    images = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        torch_stem.proj.weight.copy_(torch.as_tensor(as_numpy(weight).copy()))
        torch_stem.proj.bias.copy_(torch.as_tensor(np.array(stem.proj.bias[...])))
        got = torch_stem(torch.from_numpy(images).permute(0, 3, 1, 2))
    expect_close(got, stem(jnp.asarray(images)), 'the PyTorch stem with your weight', atol=0.0001, hint='Both stems must give the same tokens.')

