from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 4

@test_case(points=None, hidden=False)
def test_matches_mixer_ref_block(ResMLPBlock):
    import mixer_ref
    import mixer_ref.torch
    import torch
    from grading_support import call_learner, expect_close
    cfg = mixer_ref.get_config('resmlp_tiny')
    s, c = (cfg.num_tokens, cfg.hidden_dim)
    ref = mixer_ref.torch.ResMLPBlock(cfg).eval()
    want_keys = sorted(ref.state_dict())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(p + 0.1 * torch.randn(p.shape, generator=generator))
    x = torch.randn(2, s, c, generator=generator)
    with torch.no_grad():
        want = ref(x)
    block = call_learner(ResMLPBlock, s, c, 0.1, what=f'ResMLPBlock({s}, {c}, 0.1)')
    expect_close(block.gamma_1, torch.full((c,), 0.1), 'gamma_1 at initialisation', hint='LayerScale starts at layerscale_init.')
    got_keys = sorted(block.state_dict())
    assert got_keys == want_keys, f"ResMLPBlock's state_dict keys are {got_keys}; expected {want_keys}."
    block.load_state_dict(ref.state_dict())
    block.eval()
    with torch.no_grad():
        call = f'ResMLPBlock({s}, {c}, 0.1)(x) with x (2, {s}, {c}), in eval mode'
        expect_close(call_learner(block, x, what=call), want, call, atol=1e-05, meaning='(B, S, C)', hint='Check both LayerScales, the transposes and the exact GELU.')

