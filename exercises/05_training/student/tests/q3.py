from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 4

@test_case(points=None, hidden=False)
def test_matches_expand_token_mixing(block_diagonal_token_mixing):
    import dataclasses
    import mixer_ref
    import mixer_ref.models
    import numpy as np
    from mixer_ref.surgery import expand_token_mixing
    from grading_support import call_learner, expect_close, flax_params, randomise_flax
    rng = np.random.default_rng(54)
    cfg = dataclasses.replace(mixer_ref.get_config('mixer_tiny'), patch_size=1, image_size=2, hidden_dim=4, tokens_mlp_dim=3, channels_mlp_dim=4, num_blocks=1, num_classes=2)
    model = randomise_flax(mixer_ref.models.build(cfg, seed=0), rng, 0.5)
    fc1 = flax_params(model)['blocks'][0]['token_mixing']['fc1']
    want = flax_params(expand_token_mixing(model, 4))['blocks'][0]['token_mixing']['fc1']
    call = 'block_diagonal_token_mixing(w1, b1, k=2) with S=4 (a 2×2 grid), D_S=3'
    got = call_learner(block_diagonal_token_mixing, fc1['kernel'], fc1['bias'], 2, what=call)
    if not (isinstance(got, tuple | list) and len(got) == 2):
        raise AssertionError(f'{call} returned {type(got).__name__} {str(got)[:60]}; expected a pair (w1_new, b1_new).')
    expect_close(got[0], want['kernel'], f'{call}: w1_new', atol=1e-06, meaning='(K²S, K²D_S)', hint='Tile (a, b) is the tokens (a·2 + i, b·2 + j) of the 4×4 grid, in row-major order; it maps to hidden block a·K + b.')
    expect_close(got[1], want['bias'], f'{call}: b1_new', atol=1e-06, meaning='(K²D_S,)', hint="Every tile's block of hidden units gets a copy of b1.")

