from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 2

@test_case(points=None, hidden=False)
def test_init_and_forward(Affine):
    import mixer_ref
    import mixer_ref.torch
    import torch
    from grading_support import call_learner, expect_close
    ref = mixer_ref.torch.Affine(8)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ref.alpha.normal_(generator=generator)
        ref.beta.normal_(generator=generator)
    x = torch.randn(2, 5, 8, generator=generator)
    with torch.no_grad():
        want = ref(x)
    aff = call_learner(Affine, 8, what='Affine(8)')
    params = dict(aff.named_parameters()) if hasattr(aff, 'named_parameters') else {}
    assert sorted(params) == ['alpha', 'beta'], f"Affine(8) has the parameters {sorted(params)}; expected ['alpha', 'beta']: register both as nn.Parameter (not as buffers or plain tensors)."
    for name, value in params.items():
        assert value.requires_grad, f'Affine(8).{name} does not require gradients, so training would never change it; an nn.Parameter is trainable unless you freeze it.'
    expect_close(aff.alpha, torch.ones(8), 'Affine(8).alpha', hint='alpha starts at ones.')
    expect_close(aff.beta, torch.zeros(8), 'Affine(8).beta', hint='beta starts at zeros.')
    aff.load_state_dict(ref.state_dict())
    with torch.no_grad():
        expect_close(call_learner(aff, x, what='Affine(8)(x) with x (2, 5, 8)'), want, 'Affine(8)(x) with x (2, 5, 8)', hint='alpha * x + beta, per channel.')

